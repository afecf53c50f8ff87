-- Moving a tenant between tiers (a silo of its own and a pool) copies its rows to the new
-- database, then seals them in the old one: a worker that still has the old database cached, and
-- every transaction that was waiting when the move switched, must fail rather than read or write
-- rows nobody will look at again (a write acknowledged there would be lost).
--
-- Every tenant transaction starts with ragplane_enter (tenantdb.Scoped), which
--   1. takes the tenant's advisory lock in shared mode for the transaction: the mover takes it
--      exclusively to wait for the transactions in flight and hold new ones while it copies the
--      last changes and seals;
--   2. fails with SQLSTATE RPM01 if the tenant is sealed in this database; the worker answers
--      503 with Retry-After and reads the tenant's catalog entry again, which names the new one;
--   3. sets ragplane.tenant_id for the transaction, as set_config(..., true) did before.
--
-- The seals table is the admin's (or, in a silo, the tenant role's) and nobody else's: the
-- function is SECURITY DEFINER with a fixed search_path so a pool's role can run it without
-- being able to read or change the seals. A pool keeps a moved-out tenant's seal after its rows
-- are deleted (workers may still hold the pool for it); it goes when the tenant moves back in.
create table ragplane_tenant_seals (
  tenant_id text primary key,
  sealed_at timestamptz not null default now(),
  -- Where the tenant went: the new database's project id, for operators.
  moved_to  text not null default ''
);
revoke all on ragplane_tenant_seals from public;

--
-- The seal check needs READ COMMITTED: its statement must see a seal committed while it waited for
-- the lock. tenantdb.Scoped begins its transactions READ COMMITTED; a server whose default is
-- stricter would let a statement outside a transaction check with a snapshot taken before the wait,
-- so a writing transaction at another level is refused outright. A read-only REPEATABLE READ
-- transaction (an export's snapshot) does not wait: it is refused while the tenant is held, and a
-- seal that commits in the instant between its snapshot and its lock can only make it read rows that
-- were current a moment before.
create function ragplane_enter(tenant text) returns text
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  key bigint := hashtextextended('ragplane.tenant:' || tenant, 0);
begin
  if current_setting('transaction_isolation') <> 'read committed' then
    if current_setting('transaction_read_only') <> 'on' then
      raise exception 'tenant transactions must be READ COMMITTED, not %', current_setting('transaction_isolation')
        using errcode = 'RPM02';
    end if;
    if not pg_try_advisory_xact_lock_shared(key) then
      raise exception 'the tenant''s data is being moved to another database'
        using errcode = 'RPM01', hint = 'retry shortly';
    end if;
  else
    perform pg_advisory_xact_lock_shared(key);
  end if;
  if exists (select 1 from public.ragplane_tenant_seals s where s.tenant_id = tenant) then
    raise exception 'the tenant''s data has moved to another database'
      using errcode = 'RPM01', hint = 'read the tenant''s catalog entry again';
  end if;
  return set_config('ragplane.tenant_id', tenant, true);
end $$;

---- create above / drop below ----

drop function ragplane_enter(text);
drop table ragplane_tenant_seals;
