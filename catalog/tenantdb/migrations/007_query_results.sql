-- Answers of /v1/query requests sent with an Idempotency-Key, replayed to a retry of the same
-- request without retrieval or a model call. The body is kept byte for byte (bytea, not jsonb,
-- which would reorder it). Rows older than docstore.AnswerTTL (24 h) are ignored and pruned by
-- later writes, a batch at a time, through query_results_created.

create table query_results (
  key          text primary key,
  request_hash bytea not null,
  body         bytea not null,
  created_at   timestamptz not null default now()
);
create index query_results_created on query_results (created_at);

---- create above / drop below ----

drop table query_results;
