-- Large ingestions are stored at once and embedded in the background: their chunks wait with no
-- vector (keyword search finds them meanwhile), and the document says so in status ('embedding'
-- until every chunk has its vector, then 'ready').

alter table chunks alter column embedding drop not null;
alter table documents add column status text not null default 'ready';
create index chunks_unembedded on chunks (document_id) where embedding is null;

---- create above / drop below ----

drop index chunks_unembedded;
alter table documents drop column status;
delete from chunks where embedding is null;
alter table chunks alter column embedding set not null;
