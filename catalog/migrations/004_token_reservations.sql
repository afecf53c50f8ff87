-- Monthly token budgets are enforced before a model is called: a worker reserves an estimate of
-- a request's tokens here, and the tenant's count for the quota is its shipped usage (the daily
-- rollups) plus every reservation that has not lapsed. A reservation is settled to the tokens
-- the request really used, and it is deleted by the shipper in the transaction that stores the
-- request's usage event (same id), so a request is counted once at every instant: as its
-- reservation, then as its usage. A reservation left by a worker that died lapses at expires_at.
create table token_reservations (
  id         text primary key, -- the id of the usage event that settles it
  tenant_id  text not null references tenants (id) on delete cascade,
  tokens     bigint not null check (tokens >= 0),
  settled    boolean not null default false,
  expires_at timestamptz not null
);
create index token_reservations_tenant on token_reservations (tenant_id, expires_at);

-- reserve_tokens admits a request while the tenant's count (shipped usage since p_since plus
-- unexpired reservations) is below p_limit, and then holds p_estimate tokens for p_ttl under id
-- p_id. It returns the count before this request and whether it was admitted. Reservations of
-- one tenant are serialised by a transaction-level advisory lock, and the count is read in one
-- statement (one snapshot), after the lock: concurrent requests on any number of workers cannot
-- together pass the limit by more than the last one's reservation. One call is one round trip.
-- Reservations are soft state: their commits do not wait for the WAL flush (synchronous_commit off
-- for these transactions only), since a reservation lost in a crash of the catalog's server only
-- lets the queries then running pass the quota by more; usage records stay durable.
create function reserve_tokens(p_id text, p_tenant text, p_estimate bigint, p_limit bigint,
  p_since timestamptz, p_ttl interval, out counted bigint, out admitted boolean)
language plpgsql as $$
begin
  -- 7231 is this lock's class: other advisory locks of the catalog use the one-argument form.
  perform set_config('synchronous_commit', 'off', true);
  perform pg_advisory_xact_lock(7231, hashtext(p_tenant));
  delete from token_reservations where tenant_id = p_tenant and expires_at <= now();
  select coalesce((select sum(metric_value) from tenant_usage
      where tenant_id = p_tenant and granularity = 'day' and period_start >= p_since
      and metric_name in ('prompt_tokens', 'completion_tokens', 'embedding_tokens')), 0)::bigint
    + coalesce((select sum(tokens) from token_reservations where tenant_id = p_tenant), 0)::bigint
    into counted;
  admitted := counted < p_limit;
  if admitted then
    insert into token_reservations (id, tenant_id, tokens, expires_at)
    values (p_id, p_tenant, p_estimate, now() + p_ttl);
  end if;
end $$;

-- settle_tokens replaces reservation p_id's estimate by the tokens its request used, held for p_ttl
-- until the shipper stores the request's usage event; zero tokens release it. A reservation that is
-- gone (shipped, or lapsed) stays gone.
create function settle_tokens(p_id text, p_tokens bigint, p_ttl interval) returns void
language plpgsql as $$
begin
  perform set_config('synchronous_commit', 'off', true);
  if p_tokens <= 0 then
    delete from token_reservations where id = p_id;
  else
    update token_reservations set tokens = p_tokens, settled = true, expires_at = now() + p_ttl where id = p_id;
  end if;
end $$;

---- create above / drop below ----

drop function settle_tokens(text, bigint, interval);

drop function reserve_tokens(text, text, bigint, bigint, timestamptz, interval);
drop table token_reservations;
