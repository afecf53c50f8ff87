package dataplane

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane/dataplane/graph"
)

// tenantDB is a tenant's database as a request holds it: the tenant's pool, or the transaction a
// document is written or deleted in. *pgxpool.Pool and pgx.Tx satisfy it.
type tenantDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// graphStores returns the graph store for a request that holds db. It is chosen once, in Run
// (newGraph), from GraphConfig:
//
//   - the PostgreSQL store lives in the tenant's own database, so it is built on db and, given the
//     transaction a document is written in, joins it: document and facts commit together;
//   - the Neo4j store is one store shared by every tenant, which ignores db and confines each call
//     to the tenant in ctx. Its writes are not part of the tenant database's transaction: a
//     document whose transaction fails after its facts were added leaves those facts behind until
//     the same document is deleted.
//
// Either way the tenant is the one in ctx, and every call fails closed without one.
type graphStores func(db tenantDB) graph.Store
