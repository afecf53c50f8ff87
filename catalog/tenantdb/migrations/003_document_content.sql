-- Keep each document's full text, so a document can be shown whole and re-chunked.
alter table documents add column content text not null default '';

---- create above / drop below ----

alter table documents drop column content;
