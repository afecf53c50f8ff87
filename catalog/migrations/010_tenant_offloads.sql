-- Offloaded tenants. A siloed tenant idle for the control plane's RAGPLANE_OFFLOAD_AFTER has its
-- database written to an archive (a snapshot of every row, catalog/tenantdb/snapshot.go) in the
-- offload store and dropped; its first request, or an operator, asks for it back and the
-- reconciler restores it into a new database. A row here is an offload, from its start to the
-- restore; the reconciler drives it and resumes it after a crash from its state:
--   offloading: the tenant's database may be sealed (ragplane_enter refuses it) and an archive
--               may be half written; every step from here is safe to repeat, and a restore asked
--               for now cancels the offload (the database is unsealed, nothing is dropped).
--   offloaded:  the archive (archive, bytes, sha256) holds the tenant; the database is dropped
--               once dropped is true. A restore asked for (restore_requested_at) provisions a new
--               database, loads the archive, points the tenant at it and deletes this row.
-- The audit log keeps the story (tenant.offload, tenant.offload.restore, tenant.offload.cancel).
create table tenant_offloads (
  tenant_id            text primary key references tenants (id) on delete cascade,
  state                text not null default 'offloading' check (state in ('offloading', 'offloaded')),
  -- The database offloaded (tenants.provider_project_id when the offload started).
  project_id           text not null,
  archive              text not null default '',
  bytes                bigint not null default 0,
  sha256               text not null default '',
  -- The tenant schema version of the archive: the restore provisions at it, then upgrades.
  schema_version       integer not null default 0,
  rows                 jsonb not null default '{}',
  dropped              boolean not null default false,
  restore_requested_at timestamptz,
  restore_requested_by text not null default '',
  attempts             integer not null default 0,
  last_error           text not null default '',
  next_attempt_at      timestamptz not null default now(),
  started_at           timestamptz not null default now(),
  offloaded_at         timestamptz
);

---- create above / drop below ----

drop table tenant_offloads;
