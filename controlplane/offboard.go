package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	neo4jdriver "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/dataplane/graph/neo4j"
)

// tenantTables are the tenant schema's tables (catalog/tenantdb/migrations), each row carrying
// tenant_id; graphTables hold the tenant's graph when it lives in the tenant database.
var (
	tenantTables = []string{"documents", "chunks", "idempotency_keys", "query_results", "text_configs"}
	graphTables  = []string{"entities", "relations"}
)

// StoreReport is what a deletion did in one store.
type StoreReport struct {
	// Store names it: tenant_database, graph, neo4j, redis, worker_cache, catalog.
	Store string `json:"store"`
	// Action: "removed", "kept", "expires" (a cache that ends by itself) or "not_configured".
	Action string `json:"action"`
	// Detail says what and where, for people.
	Detail string `json:"detail"`
	// Rows counts the tenant's rows removed, by table (neo4j: "nodes" and "relationships").
	Rows map[string]int64 `json:"rows,omitempty"`
	// Keys lists the Redis keys removed.
	Keys []string `json:"keys,omitempty"`
}

// DeletionReport is what deleting a tenant removed where, and what it kept.
type DeletionReport struct {
	TenantID    ragplane.TenantID `json:"tenant_id"`
	Tier        string            `json:"tier"`
	CompletedAt time.Time         `json:"completed_at"`
	Stores      []StoreReport     `json:"stores"`
}

// offboarding wraps a provisioner: before it removes a deleted tenant's database (or pool rows),
// it counts what is there, removes the tenant's Redis keys, and after it succeeds records the
// deletion report in the audit log (GET /v1/tenants/{id}/deletion).
type offboarding struct {
	provision.Provisioner
	s *Server
}

// poolProvisioner is a provisioner with pools: it upgrades them, moves tenants between tiers and
// offloads idle ones (the local provider).
type poolProvisioner interface {
	provision.PoolUpgrader
	provision.Offloader
}

// offboardingPools is offboarding for a provisioner with pools, keeping its PoolUpgrader and
// TierMover.
type offboardingPools struct {
	offboarding
	up poolProvisioner
}

func (o offboardingPools) UpgradePool(ctx context.Context, projectID string) (int, error) {
	return o.up.UpgradePool(ctx, projectID)
}

func (o offboardingPools) OwnerURL(projectID string) (string, error) { return o.up.OwnerURL(projectID) }

func (o offboardingPools) DropDatabase(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	return o.up.DropDatabase(ctx, tenant, projectID)
}

// offboardingSleeper is offboarding for a provisioner that suspends idle computes, keeping its
// Sleeper (the reconciler finds these capabilities by type assertion, which a wrapper hides).
type offboardingSleeper struct {
	offboarding
	provision.Sleeper
}

// offboardingPoolsSleeper keeps both.
type offboardingPoolsSleeper struct {
	offboardingPools
	provision.Sleeper
}

// withOffboarding wraps p (see offboarding), keeping the optional interfaces it implements.
func (s *Server) withOffboarding(p provision.Provisioner) provision.Provisioner {
	o := offboarding{Provisioner: p, s: s}
	up, pools := p.(poolProvisioner)
	sl, sleeps := p.(provision.Sleeper)
	switch {
	case pools && sleeps:
		return offboardingPoolsSleeper{offboardingPools{offboarding: o, up: up}, sl}
	case pools:
		return offboardingPools{offboarding: o, up: up}
	case sleeps:
		return offboardingSleeper{o, sl}
	}
	return o
}

func (o offboarding) Deprovision(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	t, err := o.s.store.GetTenant(ctx, tenant)
	if err != nil || t.Status != ragplane.StatusDeleting || (t.ProviderProjectID != "" && projectID != t.ProviderProjectID) {
		// A failed provisioning attempt being cleaned up, or the other copy of a tenant that was
		// moving between tiers: not the database it was served from, nothing to report.
		return o.Provisioner.Deprovision(ctx, tenant, projectID)
	}
	pooled := strings.HasPrefix(projectID, provision.PooledProjectPrefix)
	rep := DeletionReport{TenantID: tenant, Tier: "siloed"}
	if pooled {
		rep.Tier = "pooled"
	}
	rows, counted := o.s.countTenantRows(ctx, tenant)
	archiveRep, offloadRows, err := o.s.removeOffloadArchive(ctx, tenant)
	if err != nil {
		return err
	}
	if !counted && offloadRows != nil {
		rows, counted = offloadRows, true // the database was dropped at the offload: its archive held them
	}
	redisRep, err := o.s.removeRedisKeys(ctx, tenant)
	if err != nil {
		return err
	}
	if err := o.Provisioner.Deprovision(ctx, tenant, projectID); err != nil {
		return err
	}
	// After the database: no worker can still be ingesting into it and adding facts to Neo4j
	// behind the removal. A failure here leaves the tenant deleting, and the next attempt, whose
	// Deprovision finds the database gone, removes what is left.
	neo4jRep, err := o.s.removeNeo4jGroup(ctx, tenant)
	if err != nil {
		return err
	}
	db := StoreReport{Store: "tenant_database", Action: "removed"}
	graph := StoreReport{Store: "graph", Action: "removed", Detail: "The tenant's entities and relations in its database."}
	if counted {
		db.Rows, graph.Rows = map[string]int64{}, map[string]int64{}
		for _, tb := range tenantTables {
			db.Rows[tb] = rows[tb]
		}
		for _, tb := range graphTables {
			graph.Rows[tb] = rows[tb]
		}
	}
	switch {
	case pooled:
		db.Detail = fmt.Sprintf("The tenant's rows in pool %s, every table (the pool stays for its other tenants).",
			strings.TrimPrefix(projectID, provision.PooledProjectPrefix))
	case t.Provider == ragplane.ProviderNeon:
		db.Detail = fmt.Sprintf("Neon project %s deleted, with its branches and computes.", projectID)
	case offloadRows != nil:
		db.Detail = fmt.Sprintf("Database %s was dropped when the tenant was offloaded (its rows, counted here, were in the archive); its role dropped now.", projectID)
	default:
		db.Detail = fmt.Sprintf("Database %s and its role dropped.", projectID)
	}
	if !counted {
		db.Detail += " It was already gone when counted (an earlier attempt removed it)."
		graph.Detail += " Counted with the database: already gone."
	}
	rep.Stores = append(rep.Stores, db, graph, archiveRep,
		neo4jRep,
		redisRep,
		StoreReport{Store: "worker_cache", Action: "expires", Detail: "Workers cache a tenant's catalog entry and database pool for RAGPLANE_TENANT_CACHE_TTL (2s by default); past it they answer 410 and close the pool. The proxies drop the tenant at the next xDS push."},
		StoreReport{Store: "catalog", Action: "kept", Detail: "The tenant row (status deleted, its database URL erased), its usage records and rollups, its revoked API keys and the audit log: billing and audit keep them."},
	)
	rep.CompletedAt = time.Now().UTC()
	// The offload's record goes last: an attempt that fails before this point is retried with it,
	// and reports the archive (removed again: a no-op) and its rows as the first attempt would.
	if err := o.s.store.DeleteOffload(ctx, tenant); err != nil {
		return err
	}
	return o.s.store.Audit(ctx, catalog.Actor{Name: "reconciler"}, catalog.ActionDeletionReport, "tenant/"+string(tenant), rep)
}

// removeOffloadArchive removes the archive of an offloaded tenant from the offload store (the
// offload's record is deleted once the deletion is done). It returns the report and, when the tenant's database had been dropped for the
// offload, the rows its archive held.
func (s *Server) removeOffloadArchive(ctx context.Context, tenant ragplane.TenantID) (StoreReport, map[string]int64, error) {
	rep := StoreReport{Store: "offload_archive", Action: "removed"}
	o, err := s.store.GetOffload(ctx, tenant)
	if ragplane.ErrorCode(err) == ragplane.ENOTFOUND {
		rep.Action, rep.Detail = "none", "The tenant was not offloaded: it had no archive."
		return rep, nil, nil
	}
	if err != nil {
		return rep, nil, err
	}
	if o.Archive != "" {
		if s.archives == nil {
			return rep, nil, fmt.Errorf("tenant %s's archive %s: no offload store is configured (RAGPLANE_OFFLOAD_DIR)", tenant, o.Archive)
		}
		if err := s.archives.Remove(ctx, o.Archive); err != nil {
			return rep, nil, err
		}
		rep.Detail = fmt.Sprintf("Archive %s (%d bytes) removed from the offload store.", o.Archive, o.Bytes)
		rep.Rows = o.Rows
	} else {
		// An offload under way writes under its name: remove what it may have written.
		if s.archives != nil {
			if err := s.archives.Remove(ctx, provision.ArchiveName(o)); err != nil {
				return rep, nil, err
			}
		}
		rep.Detail = "The tenant's offload had not recorded its archive yet; what it may have written was removed."
	}
	var rows map[string]int64
	if o.Dropped {
		rows = o.Rows
	}
	return rep, rows, nil
}

// countTenantRows counts the tenant's rows in each table of its database, through its own URL and
// row level security. false when the database cannot be reached (already removed).
func (s *Server) countTenantRows(ctx context.Context, tenant ragplane.TenantID) (map[string]int64, bool) {
	url, err := s.store.TenantDatabaseURL(ctx, tenant)
	if err != nil {
		return nil, false
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, false
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The tenant set with set_config rather than ragplane_enter (archive.Begin): a tenant deleted
	// while it moved between tiers may be sealed in the database it is deleted from, whose rows
	// still go and are counted.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, false
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `select set_config('ragplane.tenant_id', $1, true)`, string(tenant)); err != nil {
		return nil, false
	}
	out := map[string]int64{}
	for _, tb := range append(append([]string{}, tenantTables...), graphTables...) {
		var n int64
		if err := tx.QueryRow(ctx, `select count(*) from `+pgx.Identifier{tb}.Sanitize()).Scan(&n); err != nil {
			return nil, false
		}
		out[tb] = n
	}
	return out, true
}

// removeRedisKeys deletes every key of the tenant under the proxies' prefix (rate-limit state
// and concurrency leases: proxy/ratelimit puts the tenant id in braces in each).
func (s *Server) removeRedisKeys(ctx context.Context, tenant ragplane.TenantID) (StoreReport, error) {
	if s.redis == nil {
		return StoreReport{Store: "redis", Action: "not_configured",
			Detail: "REDIS_URL is not set on the control plane: the tenant's rate-limit keys expire by themselves (within an hour); its leases within their TTL."}, nil
	}
	pattern := s.cfg.RedisPrefix + "*{" + string(tenant) + "}*"
	var keys []string
	iter := s.redis.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return StoreReport{}, ragplane.Errorf(ragplane.EUNAVAILABLE, "Redis is not reachable to remove the tenant's keys.")
	}
	if len(keys) > 0 {
		if err := s.redis.Del(ctx, keys...).Err(); err != nil {
			return StoreReport{}, ragplane.Errorf(ragplane.EUNAVAILABLE, "Redis is not reachable to remove the tenant's keys.")
		}
	}
	return StoreReport{Store: "redis", Action: "removed", Keys: keys,
		Detail: fmt.Sprintf("Every key matching %s: rate-limit state and concurrency leases.", pattern)}, nil
}

// graphGroups is a graph store shared by every tenant, where a tenant's graph is a group of
// nodes and relationships: neo4j.Store.
type graphGroups interface {
	// DeleteGroup removes the tenant's nodes and relationships and counts them.
	DeleteGroup(ctx context.Context, tenant ragplane.TenantID) (nodes, rels int64, err error)
}

// removeNeo4jGroup removes the tenant's graph from the workers' Neo4j, by group_id. An error
// (Neo4j unreachable: EUNAVAILABLE) fails the deletion attempt, which the reconciler retries.
func (s *Server) removeNeo4jGroup(ctx context.Context, tenant ragplane.TenantID) (StoreReport, error) {
	if s.neo4j == nil {
		return StoreReport{Store: "neo4j", Action: "not_configured",
			Detail: "NEO4J_URI is not set on the control plane: workers with RAGPLANE_GRAPH_STORE=neo4j need the control plane to have the same NEO4J_* variables for deletions to remove their graphs."}, nil
	}
	nodes, rels, err := s.neo4j.DeleteGroup(ctx, tenant)
	if err != nil {
		var e *ragplane.Error
		if errors.As(err, &e) {
			return StoreReport{}, err
		}
		s.log.Error("removing a tenant's graph from Neo4j", "tenant_id", tenant, "error", err)
		return StoreReport{}, ragplane.Errorf(ragplane.EUNAVAILABLE, "Removing the tenant's graph from Neo4j failed; retrying.")
	}
	db := s.cfg.Neo4j.Database
	if db == "" {
		db = "the server's default database"
	}
	return StoreReport{Store: "neo4j", Action: "removed", Rows: map[string]int64{"nodes": nodes, "relationships": rels},
		Detail: fmt.Sprintf("Every node and relationship with group_id %s in Neo4j (%s), with DETACH DELETE in batches; counted as removed on this attempt.", tenant, db)}, nil
}

// newNeo4j makes a driver for NEO4J_URI when it is set (optional: see removeNeo4jGroup). It
// dials on first use, so a Neo4j that is down delays deletions, not the control plane's start.
func (s *Server) newNeo4j() error {
	c := s.cfg.Neo4j
	if c.URI == "" {
		return nil
	}
	auth := neo4jdriver.NoAuth()
	if c.Username != "" {
		auth = neo4jdriver.BasicAuth(c.Username, c.Password, "")
	}
	driver, err := neo4jdriver.NewDriverWithContext(c.URI, auth)
	if err != nil {
		return fmt.Errorf("NEO4J_URI: %w", err)
	}
	s.neo4j = neo4j.New(driver, c.Database)
	s.closers = append(s.closers, func() { driver.Close(context.Background()) })
	return nil
}

// newRedis connects to REDIS_URL when it is set (optional: see removeRedisKeys).
func (s *Server) newRedis() error {
	if s.cfg.RedisURL == "" {
		return nil
	}
	opts, err := redis.ParseURL(s.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL cannot be parsed")
	}
	s.redis = redis.NewClient(opts)
	s.closers = append(s.closers, func() { s.redis.Close() })
	return nil
}

// getDeletionReport answers GET /v1/tenants/{id}/deletion: what deleting the tenant removed where
// and what it kept; 404 until the deletion has completed.
func (s *Server) getDeletionReport(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	var rep DeletionReport
	if err := s.store.DeletionReport(c.Request().Context(), id, &rep); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}
