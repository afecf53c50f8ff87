-- The tenant's knowledge graph: entities and relations with bi-temporal validity, in the style of
-- Graphiti's edges (valid_at / invalid_at for when a fact held; created_at / expired_at for when
-- we learned and retracted it), each tied to the chunk it was extracted from.

create table entities (
  id         uuid primary key,
  name       text not null,
  norm_name  text not null unique,
  kind       text not null default '',
  summary    text not null default '',
  created_at timestamptz not null default now()
);
create index entities_name_trgm on entities (norm_name text_pattern_ops);

create table relations (
  id          uuid primary key,
  source_id   uuid not null references entities (id) on delete cascade,
  target_id   uuid not null references entities (id) on delete cascade,
  relation    text not null,
  fact        text not null,
  chunk_id    uuid references chunks (id) on delete cascade,
  document_id uuid references documents (id) on delete cascade,
  valid_at    timestamptz,
  invalid_at  timestamptz,
  created_at  timestamptz not null default now(),
  expired_at  timestamptz
);
create index relations_source on relations (source_id);
create index relations_target on relations (target_id);
create index relations_document on relations (document_id);

---- create above / drop below ----

drop table relations;
drop table entities;
