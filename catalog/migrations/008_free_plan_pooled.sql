-- Isolation tiers by plan (issue 13): the free plan's tenants are provisioned in the pooled tier
-- (a pool database shared with other tenants, confined by row level security); pro and enterprise
-- keep the system default, siloed. An operator changes a plan's tier with PUT /v1/plans/{name}
-- (settings.isolation_tier); it applies to tenants provisioned afterwards.
update plans set settings = settings || '{"isolation_tier": "pooled"}', updated_at = now()
  where name = 'free' and not settings ? 'isolation_tier';

---- create above / drop below ----

update plans set settings = settings - 'isolation_tier', updated_at = now() where name = 'free';
