-- Tier moves. A tenant whose plan (or isolation_tier setting) changes to another tier is moved:
-- its rows are copied to a database of the new tier while it keeps being served, the last
-- changes are copied with its writes held, the old copy is sealed and the catalog switched in
-- one step, and the old copy is removed. A row here is a move in progress; the reconciler drives
-- it and resumes it after a crash from its state:
--   copying:  the target may be provisioned (to_project_id, to_url_sealed) and partly filled;
--             every step from here is safe to repeat.
--   switched: the tenant is served from the target (tenants.provider_project_id); the old copy,
--             from_project_id, is sealed and still has to be removed.
-- The row goes when the move is done; the audit log keeps its story (tenant.move.*).
create table tenant_moves (
  tenant_id         text primary key references tenants (id) on delete cascade,
  from_tier         text not null check (from_tier in ('siloed', 'pooled')),
  to_tier           text not null check (to_tier in ('siloed', 'pooled')),
  state             text not null default 'copying' check (state in ('copying', 'switched')),
  from_project_id   text not null,
  to_project_id     text not null default '',
  -- The target's URL for the tenant's workers, sealed like tenants.database_url_sealed (same
  -- associated data): the switch copies it there.
  to_url_sealed     bytea,
  to_schema_version integer not null default 0,
  -- Rows copied by the last pass, per table, and how long writes were held (JSON, for the audit).
  stats             jsonb not null default '{}',
  attempts          integer not null default 0,
  last_error        text not null default '',
  next_attempt_at   timestamptz not null default now(),
  requested_by      text not null,
  started_at        timestamptz not null default now(),
  switched_at       timestamptz,
  check (from_tier <> to_tier)
);

---- create above / drop below ----

drop table tenant_moves;
