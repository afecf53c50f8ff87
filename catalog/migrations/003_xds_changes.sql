-- Change tracking for the xDS feed, so that its cost follows the changes, not the tenant count.
--
-- Every tenant row carries the id of the transaction that last wrote it. A reader that remembers
-- the oldest transaction still running at its previous read (pg_snapshot_xmin) finds every row
-- written since with `change_xid >= mark`: unlike a sequence number, which is taken before commit
-- and can become visible out of order, this misses no row whose transaction was in flight.
-- A row may be read twice; readers are idempotent.
alter table tenants add column change_xid xid8 not null default pg_current_xact_id();
create index tenants_change_xid on tenants (change_xid);

create function tenants_touch_change_xid() returns trigger language plpgsql as $$
begin
  new.change_xid := pg_current_xact_id();
  return new;
end $$;
create trigger tenants_change_xid before update on tenants
  for each row execute function tenants_touch_change_xid();

-- Key rotation by any replica reaches every replica's xDS feed at once. Plans and system
-- defaults need no trigger: changing them bumps the config version of every tenant they reach in
-- the same transaction, which notifies ragplane_tenants for each.
create function notify_signing_key_change() returns trigger language plpgsql as $$
begin
  perform pg_notify('ragplane_keys', '');
  return null;
end $$;
create trigger signing_keys_notify after insert or update or delete on signing_keys
  for each statement execute function notify_signing_key_change();

---- create above / drop below ----

drop trigger signing_keys_notify on signing_keys;
drop function notify_signing_key_change();
drop trigger tenants_change_xid on tenants;
drop function tenants_touch_change_xid();
drop index tenants_change_xid;
alter table tenants drop column change_xid;
