-- Tenants that sleep. A tenant unused for the control plane's RAGPLANE_IDLE_AFTER is marked idle
-- (idle_since): workers close its database pools and, on Neon, its compute is suspended. The
-- first request to it wakes it (a worker clears idle_since and sets woke_at). This is activity,
-- not configuration: it lives beside the tenants table, so marking and waking neither bump a
-- tenant's config version nor reach the proxies over xDS, and an idle tenant keeps status active
-- (it is served, never refused).
create table tenant_activity (
  tenant_id         text primary key references tenants (id) on delete cascade,
  -- When the tenant was marked idle; null while it is awake.
  idle_since        timestamptz,
  -- When a request last woke it; counts as a use, so a woken tenant sleeps again only after
  -- another full idle period.
  woke_at           timestamptz,
  -- The tenant's compute was suspended through the provider's API and not started since.
  compute_suspended boolean not null default false
);
create index tenant_activity_idle on tenant_activity (tenant_id) where idle_since is not null;

-- Workers close an idle tenant's pools at once and forget it was idle at a wake: the payload is
-- 'idle:<tenant id>' or 'awake:<tenant id>'.
create function notify_tenant_activity() returns trigger language plpgsql as $$
begin
  if new.idle_since is distinct from (case when tg_op = 'UPDATE' then old.idle_since end) then
    perform pg_notify('ragplane_tenant_activity',
      case when new.idle_since is null then 'awake:' else 'idle:' end || new.tenant_id);
  end if;
  return null;
end $$;
create trigger tenant_activity_notify after insert or update on tenant_activity
  for each row execute function notify_tenant_activity();

---- create above / drop below ----

drop trigger tenant_activity_notify on tenant_activity;
drop function notify_tenant_activity();
drop table tenant_activity;
