-- An idempotent ingestion request may create several documents: remember all their ids.
alter table idempotency_keys add column result text;

---- create above / drop below ----

alter table idempotency_keys drop column result;
