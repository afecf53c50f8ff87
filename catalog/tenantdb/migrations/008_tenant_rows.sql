-- Every row carries its tenant's id, and row-level security confines every query to the tenant
-- set for the transaction (ragplane.tenant_id, set with set_config(..., true) by tenantdb.Scoped).
-- A siloed tenant's database holds one tenant's rows and a pool database many; the schema, the
-- policies and the data plane's queries are the same in both.
--
-- Fail closed: with no tenant set, current_setting(..., true) is null (or '' once a transaction
-- that set it has ended), nullif makes both null, and null matches no row: reads return nothing,
-- and inserts fail (the default is null, and tenant_id is not null).
--
-- The policies bind every role but the tables' owner (and superusers and BYPASSRLS roles). A
-- pool's tables belong to the admin role and its tenants connect as another role, which they
-- bind; the pool also FORCEs them, so they bind the owner too (tenantdb.ForcePolicies). A siloed
-- tenant's role owns its tables and is not bound: its database holds nobody else's rows, and the
-- planner's statistics stay readable to it (pg_stats hides a table's from a role its policies
-- bind), which keyword search's document frequencies come from.
--
-- Existing rows get the tenant being migrated (tenant_literal, given by tenantdb.MigrateSilo):
-- a siloed database's own tenant. A pool has no rows yet, except the 'english' text configuration
-- of 005, which belongs to nobody and goes.

alter table documents add column tenant_id text not null default {{.tenant_literal}};
alter table chunks add column tenant_id text not null default {{.tenant_literal}};
alter table idempotency_keys add column tenant_id text not null default {{.tenant_literal}};
alter table entities add column tenant_id text not null default {{.tenant_literal}};
alter table relations add column tenant_id text not null default {{.tenant_literal}};
alter table text_configs add column tenant_id text not null default {{.tenant_literal}};
alter table query_results add column tenant_id text not null default {{.tenant_literal}};
delete from text_configs where tenant_id = '';

alter table documents alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table chunks alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table idempotency_keys alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table entities alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table relations alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table text_configs alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');
alter table query_results alter column tenant_id set default nullif(current_setting('ragplane.tenant_id', true), '');

-- Natural keys are per tenant. Ids that are UUIDs stay global.
alter table documents drop constraint documents_content_hash_key;
alter table documents add constraint documents_content_hash_key unique (tenant_id, content_hash);
drop index documents_created;
create index documents_created on documents (tenant_id, created_at, id);
alter table idempotency_keys drop constraint idempotency_keys_pkey;
alter table idempotency_keys add primary key (tenant_id, key);
alter table entities drop constraint entities_norm_name_key;
alter table entities add constraint entities_norm_name_key unique (tenant_id, norm_name);
drop index entities_name_trgm;
create index entities_name_trgm on entities (tenant_id, norm_name text_pattern_ops);
alter table text_configs drop constraint text_configs_pkey;
alter table text_configs add primary key (tenant_id, config);
alter table query_results drop constraint query_results_pkey;
alter table query_results add primary key (tenant_id, key);
-- A pool's tenant's chunks and facts are found through these (the exact vector scan, counts).
create index chunks_tenant on chunks (tenant_id, document_id);
create index relations_tenant on relations (tenant_id);

alter table documents enable row level security;
alter table chunks enable row level security;
alter table idempotency_keys enable row level security;
alter table entities enable row level security;
alter table relations enable row level security;
alter table text_configs enable row level security;
alter table query_results enable row level security;

create policy tenant_rows on documents using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on chunks using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on idempotency_keys using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on entities using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on relations using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on text_configs using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));
create policy tenant_rows on query_results using (tenant_id = nullif(current_setting('ragplane.tenant_id', true), ''));

---- create above / drop below ----

drop policy tenant_rows on documents;
drop policy tenant_rows on chunks;
drop policy tenant_rows on idempotency_keys;
drop policy tenant_rows on entities;
drop policy tenant_rows on relations;
drop policy tenant_rows on text_configs;
drop policy tenant_rows on query_results;
alter table documents disable row level security;
alter table chunks disable row level security;
alter table idempotency_keys disable row level security;
alter table entities disable row level security;
alter table relations disable row level security;
alter table text_configs disable row level security;
alter table query_results disable row level security;
drop index chunks_tenant;
drop index relations_tenant;
alter table query_results drop constraint query_results_pkey;
alter table query_results add primary key (key);
alter table text_configs drop constraint text_configs_pkey;
alter table text_configs add primary key (config);
drop index entities_name_trgm;
create index entities_name_trgm on entities (norm_name text_pattern_ops);
alter table entities drop constraint entities_norm_name_key;
alter table entities add constraint entities_norm_name_key unique (norm_name);
alter table idempotency_keys drop constraint idempotency_keys_pkey;
alter table idempotency_keys add primary key (key);
drop index documents_created;
create index documents_created on documents (created_at, id);
alter table documents drop constraint documents_content_hash_key;
alter table documents add constraint documents_content_hash_key unique (content_hash);
alter table documents drop column tenant_id;
alter table chunks drop column tenant_id;
alter table idempotency_keys drop column tenant_id;
alter table entities drop column tenant_id;
alter table relations drop column tenant_id;
alter table text_configs drop column tenant_id;
alter table query_results drop column tenant_id;
