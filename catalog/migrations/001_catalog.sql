-- The tenant catalog. Only the control plane writes it; data-plane workers read it.

create table plans (
  name        text primary key,
  description text not null default '',
  limits      jsonb not null default '{}',
  settings    jsonb not null default '{}',
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

insert into plans (name, description, limits, settings) values
  ('free', 'Try it out: small quotas, standard models.',
   '{"queries_per_hour": 100, "requests_per_second": 1, "burst": 5, "max_concurrent_requests": 2, "max_tokens_per_query": 1024, "max_documents": 100, "max_storage_mb": 50, "max_top_k": 10, "max_model_tier": "small", "max_request_bytes": 1048576, "monthly_tokens": 200000}',
   '{"model_tier": "small", "retrieval_mode": "hybrid", "top_k": 5}'),
  ('pro', 'Growing teams.',
   '{"queries_per_hour": 5000, "requests_per_second": 20, "burst": 40, "max_concurrent_requests": 10, "max_tokens_per_query": 4096, "max_documents": 10000, "max_storage_mb": 5000, "max_top_k": 50, "max_model_tier": "standard", "max_request_bytes": 10485760, "monthly_tokens": 10000000}',
   '{"model_tier": "standard", "retrieval_mode": "hybrid", "top_k": 8}'),
  ('enterprise', 'Large organisations: high quotas, all models.',
   '{"queries_per_hour": 100000, "requests_per_second": 200, "burst": 400, "max_concurrent_requests": 100, "max_tokens_per_query": 16384, "max_documents": 1000000, "max_storage_mb": 500000, "max_top_k": 100, "max_model_tier": "large", "max_request_bytes": 52428800, "monthly_tokens": 1000000000}',
   '{"model_tier": "large", "retrieval_mode": "hybrid", "top_k": 10}');

-- The operator's overrides of the built-in system defaults (a single row).
create table system_config (
  id         boolean primary key default true check (id),
  limits     jsonb not null default '{}',
  settings   jsonb not null default '{}',
  updated_at timestamptz not null default now()
);
insert into system_config default values;

create table tenants (
  id                  text primary key check (id ~ '^[a-z][a-z0-9_]{1,38}[a-z0-9]$'),
  name                text not null,
  email               text not null,
  plan                text not null references plans (name),
  region              text not null,
  status              text not null check (status in ('provisioning', 'active', 'suspended', 'deleting', 'deleted', 'failed')),
  status_reason       text not null default '',
  provider            text not null check (provider in ('local', 'neon')),
  provider_project_id text not null default '',
  -- AES-GCM sealed with RAGPLANE_SECRET_KEY, bound to the tenant id; never stored in clear.
  database_url_sealed bytea,
  schema_version      integer not null default 0,
  limits              jsonb not null default '{}',
  settings            jsonb not null default '{}',
  config_version      bigint not null default 1,
  provision_attempts  integer not null default 0,
  next_attempt_at     timestamptz not null default now(),
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  deleted_at          timestamptz
);
-- An email is unique among tenants that still exist.
create unique index tenants_email_live on tenants (lower(email)) where status <> 'deleted';
create index tenants_pending on tenants (next_attempt_at) where status in ('provisioning', 'deleting');
create index tenants_status on tenants (status, id);

-- Every change to a tenant is announced so that reconcilers and xDS servers on every replica react at once.
create function notify_tenant_change() returns trigger language plpgsql as $$
begin
  perform pg_notify('ragplane_tenants', new.id);
  return new;
end $$;
create trigger tenants_notify after insert or update on tenants
  for each row execute function notify_tenant_change();

create table api_keys (
  id           text primary key,
  tenant_id    text not null references tenants (id),
  name         text not null,
  prefix       text not null unique,
  secret_hash  bytea not null,
  roles        text[] not null,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
create index api_keys_tenant on api_keys (tenant_id, created_at);

-- JWT signing keys. A key signs from active_at until the next key is active, and is published in
-- the JWKS until publish_until, so rotation never invalidates a token that has not expired.
create table signing_keys (
  kid                 text primary key,
  alg                 text not null,
  private_key_sealed  bytea not null,
  public_key          bytea not null,
  created_at          timestamptz not null default now(),
  active_at           timestamptz not null default now(),
  publish_until       timestamptz
);

create table audit_log (
  id         bigserial primary key,
  at         timestamptz not null default now(),
  actor      text not null,
  action     text not null,
  target     text not null,
  before     jsonb,
  after      jsonb,
  request_id text not null default ''
);
create index audit_log_target on audit_log (target, id);

create table provisioning_operations (
  id          bigserial primary key,
  tenant_id   text not null references tenants (id),
  kind        text not null check (kind in ('provision', 'deprovision', 'cleanup')),
  attempt     integer not null,
  state       text not null check (state in ('running', 'succeeded', 'failed')),
  error       text not null default '',
  started_at  timestamptz not null default now(),
  finished_at timestamptz
);
create index provisioning_operations_tenant on provisioning_operations (tenant_id, id);

-- Idempotency-Key records: the same key with the same request returns the first answer.
create table idempotency_keys (
  scope        text not null,
  key          text not null,
  request_hash bytea not null,
  target       text not null,
  created_at   timestamptz not null default now(),
  primary key (scope, key)
);

-- Usage: raw events (one per metered request, id makes delivery idempotent) and the seed's
-- tenant_usage rollups. Filled by the usage shipper.
create table usage_events (
  id                text primary key,
  tenant_id         text not null references tenants (id),
  subject           text not null default '',
  route             text not null,
  retrieval_mode    text not null default '',
  model             text not null default '',
  prompt_tokens     integer not null default 0,
  completion_tokens integer not null default 0,
  embedding_tokens  integer not null default 0,
  documents_written integer not null default 0,
  chunks_written    integer not null default 0,
  latency_ms        integer not null default 0,
  status            integer not null,
  request_id        text not null default '',
  at                timestamptz not null
);
create index usage_events_tenant_at on usage_events (tenant_id, at);

create table tenant_usage (
  tenant_id    text not null references tenants (id),
  metric_name  text not null,
  granularity  text not null check (granularity in ('hour', 'day')),
  period_start timestamptz not null,
  metric_value numeric not null,
  updated_at   timestamptz not null default now(),
  primary key (tenant_id, metric_name, granularity, period_start)
);

---- create above / drop below ----

drop table tenant_usage;
drop table usage_events;
drop table idempotency_keys;
drop table provisioning_operations;
drop table audit_log;
drop table signing_keys;
drop table api_keys;
drop trigger tenants_notify on tenants;
drop function notify_tenant_change();
drop table tenants;
drop table system_config;
drop table plans;
