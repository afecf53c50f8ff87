-- Data-plane workers register here and heartbeat a lease; the control plane serves the live ones
-- to proxies over xDS.
create table workers (
  id               text primary key,
  addr             text not null,
  registered_at    timestamptz not null default now(),
  heartbeat_at     timestamptz not null default now(),
  lease_expires_at timestamptz not null
);
create index workers_lease on workers (lease_expires_at);

create function notify_worker_change() returns trigger language plpgsql as $$
begin
  perform pg_notify('ragplane_workers', coalesce(new.id, old.id));
  return null;
end $$;
-- Only registration and removal change the endpoint set; heartbeats do not notify.
create trigger workers_notify after insert or delete on workers
  for each row execute function notify_worker_change();

---- create above / drop below ----

drop trigger workers_notify on workers;
drop function notify_worker_change();
drop table workers;
