-- Named operator identities next to the bootstrap admin token (RAGPLANE_ADMIN_TOKEN): each has a role
-- and a bearer token of its own, so the audit log says which operator did what. Only a SHA-256 hash of
-- the token is stored.
create table operators (
  name        text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  role        text not null check (role in ('admin', 'viewer', 'billing')),
  token_hash  bytea not null unique,
  created_at  timestamptz not null default now(),
  created_by  text not null,
  revoked_at  timestamptz
);

---- create above / drop below ----

drop table operators;
