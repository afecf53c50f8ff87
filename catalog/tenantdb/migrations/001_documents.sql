-- The schema of one tenant's own database. No table here ever holds another tenant's rows.
-- {{.embedding_dimension}} is fixed when the tenant is provisioned.

create extension if not exists vector;

create table documents (
  id           uuid primary key,
  title        text not null default '',
  source       text not null default '',
  content_hash bytea not null unique,
  metadata     jsonb not null default '{}',
  bytes        bigint not null default 0,
  chunk_count  integer not null default 0,
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now()
);
create index documents_created on documents (created_at, id);
create index documents_metadata on documents using gin (metadata jsonb_path_ops);

create table chunks (
  id          uuid primary key,
  document_id uuid not null references documents (id) on delete cascade,
  ordinal     integer not null,
  content     text not null,
  tokens      integer not null,
  embedding   vector({{.embedding_dimension}}) not null,
  tsv         tsvector generated always as (to_tsvector('english', content)) stored,
  unique (document_id, ordinal)
);
create index chunks_embedding on chunks using hnsw (embedding vector_cosine_ops);
create index chunks_tsv on chunks using gin (tsv);

create table idempotency_keys (
  key          text primary key,
  request_hash bytea not null,
  document_id  uuid,
  created_at   timestamptz not null default now()
);

---- create above / drop below ----

drop table idempotency_keys;
drop table chunks;
drop table documents;
