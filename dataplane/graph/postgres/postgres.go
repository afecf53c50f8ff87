// Package postgres is the default graph store: the entities and relations tables of the tenant's
// own database (catalog/tenantdb migration 002). The database is the tenant boundary, so no query
// filters by tenant; every method still requires a tenant in the context and fails closed without
// one, so that a call path that lost the caller's identity cannot read or write a graph.
package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// DB is the part of pgx the store uses: *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it, for the
// tenant's database. With a pool or a connection, each write is one batch and so one implicit
// transaction; with a Tx, writes join the caller's transaction (which should be READ COMMITTED, the
// default, for the locks below to order concurrent writers).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store is a tenant's graph in its own database. It implements graph.Store.
type Store struct {
	db DB
}

// New returns a store on the tenant database behind db.
func New(db DB) *Store { return &Store{db: db} }

// lockClass is the advisory lock AddFacts holds shared and DeleteDocument exclusive (in the
// two-int4 key space, apart from tern's one-bigint migration lock), so that a delete never judges
// an entity orphaned while a concurrent AddFacts is attaching a relation to it: row locks cannot
// prevent that, because the delete's NOT EXISTS reads a snapshot taken before the other commit.
//
// Two writers of contradicting facts need no lock of their own: contradicting facts share the
// entity at their exclusive end, and the entity upsert locks that row until commit, so the second
// writer's relation statements run after the first commits and see its relation.
const lockClass int32 = 0x67726170 // "grap"

const (
	sqlLockDocumentsShared = `select pg_advisory_xact_lock_shared($1::int4, 0)`
	sqlLockDocuments       = `select pg_advisory_xact_lock($1::int4, 0)`

	// Entities come sorted by norm_name, so concurrent upserts lock rows in one order. The first
	// display name stays; an empty kind is filled.
	sqlUpsertEntities = `
insert into entities (id, name, norm_name, kind)
select gen_random_uuid(), e.name, e.norm_name, e.kind
from unnest($1::text[], $2::text[], $3::text[]) as e(name, norm_name, kind)
order by e.norm_name
on conflict (tenant_id, norm_name) do update set kind = excluded.kind
where entities.kind = '' and excluded.kind <> ''`

	// sqlAddRelation inserts one relation unless the same fact of the same chunk is there already,
	// then retires what it contradicts. $8/$9 say whether the relation is exclusive per source
	// (graph.SingleValued) and per target (graph.SingleHolder). A contradicting current relation
	// that started after the new fact makes the new one arrive retired (invalid_at = that start);
	// otherwise current contradicting relations that started no later are retired with invalid_at
	// = the new fact's valid_at, or now. The update does not see the inserted row (one snapshot),
	// and a retired-on-arrival fact retires nothing.
	sqlAddRelation = `
with s as (select id from entities where norm_name = $1),
t as (select id from entities where norm_name = $2),
added as (
  insert into relations (id, source_id, target_id, relation, fact, chunk_id, document_id, valid_at, invalid_at, expired_at)
  select gen_random_uuid(), s.id, t.id, $3, $4, $5::uuid, $6::uuid, $7::timestamptz,
         later.valid_at, case when later.valid_at is not null then now() end
  from s cross join t
  left join lateral (
    select min(r.valid_at) as valid_at from relations r
    where r.relation = $3 and r.invalid_at is null and r.expired_at is null
      and $7::timestamptz is not null and r.valid_at > $7::timestamptz
      and ((r.source_id = s.id and r.target_id <> t.id and $8::bool)
        or (r.target_id = t.id and r.source_id <> s.id and $9::bool))
  ) later on true
  where not exists (
    select 1 from relations d
    where d.source_id = s.id and d.target_id = t.id and d.relation = $3 and d.fact = $4
      and d.chunk_id is not distinct from $5::uuid and d.document_id = $6::uuid)
  returning source_id, target_id, valid_at, invalid_at
)
update relations r set invalid_at = coalesce(added.valid_at, now()), expired_at = now()
from added
where added.invalid_at is null
  and r.relation = $3 and r.invalid_at is null and r.expired_at is null
  and ((r.source_id = added.source_id and r.target_id <> added.target_id and $8::bool)
    or (r.target_id = added.target_id and r.source_id <> added.source_id and $9::bool))
  and (r.valid_at is null or r.valid_at <= coalesce(added.valid_at, now()))`

	// The main delete sees relations as they were before the CTE's delete, hence the filter on
	// the document.
	sqlDeleteDocument = `
with gone as (delete from relations where document_id = $1::uuid returning source_id, target_id),
touched as (select source_id as id from gone union select target_id from gone)
delete from entities e using touched
where e.id = touched.id
  and not exists (
    select 1 from relations r
    where (r.source_id = e.id or r.target_id = e.id) and r.document_id is distinct from $1::uuid)`

	// A sequential scan of entities: prefix and substring matches alike (see SearchEntities).
	sqlSearchEntities = `
select id::text, name, kind, summary from entities
where norm_name like '%' || $1 || '%' escape '\'
order by starts_with(norm_name, $2) desc, length(norm_name), norm_name collate "C"
limit $3`

	sqlEntityID = `select id from entities where norm_name = $1`

	relationColumns = `r.id::text, s.name, t.name, r.relation, r.fact, coalesce(r.chunk_id::text, ''),
  coalesce(r.document_id::text, ''), r.valid_at, r.invalid_at, r.expired_at, r.created_at`
	relationJoins = `relations r join entities s on s.id = r.source_id join entities t on t.id = r.target_id`
	// Names compare by code point ("C"), as in the Neo4j store.
	newestFirst = `order by coalesce(r.valid_at, r.created_at) desc, r.created_at desc, r.relation collate "C",
  t.norm_name collate "C", s.norm_name collate "C", r.id`
	oldestFirst = `order by coalesce(r.valid_at, r.created_at), r.created_at, r.relation collate "C",
  t.norm_name collate "C", s.norm_name collate "C", r.id`

	sqlEntityRelations = `select ` + relationColumns + ` from ` + relationJoins + `
where (r.source_id = $1 or r.target_id = $1) and r.invalid_at is null and r.expired_at is null
` + newestFirst + ` limit $2`

	sqlEntityTimeline = `select ` + relationColumns + ` from ` + relationJoins + `
where r.source_id = $1 or r.target_id = $1
` + oldestFirst + ` limit $2`

	// The ids as arrays (init plans) let the planner OR the two relation indexes; an IN over a
	// CTE scans every relation.
	sqlFactsForEntities = `select ` + relationColumns + ` from ` + relationJoins + `
where (r.source_id = any(array(select id from entities where norm_name = any($1::text[])))
    or r.target_id = any(array(select id from entities where norm_name = any($1::text[]))))
  and r.invalid_at is null and r.expired_at is null
` + newestFirst + ` limit $2`

	// One probe of the unique norm_name index per candidate word n-gram.
	sqlEntitiesInText = `
select id::text, name, kind, summary from entities
where norm_name = any($1::text[])
order by length(norm_name) desc, norm_name collate "C"
limit $2`
)

// AddFacts implements graph.Store. All of it is one transaction: the entity upsert and one
// statement per fact, in order, in a single batch. Entity rows are locked in name order, so
// concurrent calls do not deadlock; several calls inside one caller transaction can, with another
// such transaction, and one of them then fails with EUNAVAILABLE. Errors: EINVALID, ENOTFOUND (the
// document or a chunk is not in the database), EUNAUTHORIZED, EUNAVAILABLE (deadlock or timeout:
// retry).
func (s *Store) AddFacts(ctx context.Context, documentID string, facts []graph.Fact) error {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return err
	}
	if err := graph.ValidateFacts(documentID, facts); err != nil {
		return err
	}
	if len(facts) == 0 {
		return nil
	}
	ents := graph.FactEntities(facts)
	names, norms, kinds := make([]string, len(ents)), make([]string, len(ents)), make([]string, len(ents))
	for i, e := range ents {
		names[i], norms[i], kinds[i] = e.Name, graph.NormalizeName(e.Name), e.Kind
	}
	b := &pgx.Batch{}
	b.Queue(sqlLockDocumentsShared, lockClass)
	b.Queue(sqlUpsertEntities, names, norms, kinds)
	for _, f := range facts {
		var chunk *string
		if f.ChunkID != "" {
			chunk = &f.ChunkID
		}
		var validAt *time.Time
		if f.ValidAt != nil {
			v := f.ValidAt.UTC()
			validAt = &v
		}
		b.Queue(sqlAddRelation, graph.NormalizeName(f.Source), graph.NormalizeName(f.Target), f.Relation,
			strings.TrimSpace(f.Fact), chunk, documentID, validAt,
			graph.SingleValued(f.Relation), graph.SingleHolder(f.Relation))
	}
	return pgError(s.db.SendBatch(ctx, b).Close(), "add facts")
}

// DeleteDocument implements graph.Store. Errors: EINVALID, EUNAUTHORIZED, EUNAVAILABLE.
//
// Call it before deleting the document row: the foreign keys cascade the relations away with the
// document, but not the entities they leave orphaned.
func (s *Store) DeleteDocument(ctx context.Context, documentID string) error {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return err
	}
	if !graph.ValidID(documentID) {
		return ragplane.FieldErrorf("document_id", "A document id is a UUID.")
	}
	b := &pgx.Batch{}
	b.Queue(sqlLockDocuments, lockClass)
	b.Queue(sqlDeleteDocument, documentID)
	return pgError(s.db.SendBatch(ctx, b).Close(), "delete document graph")
}

// SearchEntities implements graph.Store. LIKE wildcards in q match literally. Cost: a sequential
// scan of the tenant's entities (the btree on norm_name cannot serve a substring match); a pg_trgm
// GIN index on norm_name would make it an index scan.
func (s *Store) SearchEntities(ctx context.Context, q string, limit int) ([]graph.Entity, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, err
	}
	n := graph.NormalizeName(q)
	if n == "" {
		return nil, ragplane.FieldErrorf("q", "A search needs a name.")
	}
	rows, err := s.db.Query(ctx, sqlSearchEntities, escapeLike(n), n, graph.ClampLimit(limit))
	return collectEntities(rows, err)
}

// escapeLike makes s match itself in a LIKE pattern with escape '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// EntityRelations implements graph.Store.
func (s *Store) EntityRelations(ctx context.Context, name string, limit int) ([]graph.Relation, error) {
	id, err := s.entityID(ctx, name)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, sqlEntityRelations, id, graph.ClampLimit(limit))
	return collectRelations(rows, err)
}

// EntityTimeline implements graph.Store.
func (s *Store) EntityTimeline(ctx context.Context, name string) ([]graph.Relation, error) {
	id, err := s.entityID(ctx, name)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, sqlEntityTimeline, id, graph.MaxLimit)
	return collectRelations(rows, err)
}

func (s *Store) entityID(ctx context.Context, name string) (string, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return "", err
	}
	var id string
	n := graph.NormalizeName(name)
	if n == "" {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Entity not found.")
	}
	if err := s.db.QueryRow(ctx, sqlEntityID, n).Scan(&id); err != nil {
		return "", pgError(err, "Entity")
	}
	return id, nil
}

// FactsForEntities implements graph.Store. At most MaxLimit names are looked up.
func (s *Store) FactsForEntities(ctx context.Context, names []string, limit int) ([]graph.Relation, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, err
	}
	var norms []string
	for _, name := range names {
		if n := graph.NormalizeName(name); n != "" && !slices.Contains(norms, n) {
			norms = append(norms, n)
		}
		if len(norms) == graph.MaxLimit {
			break
		}
	}
	if len(norms) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, sqlFactsForEntities, norms, graph.ClampLimit(limit))
	return collectRelations(rows, err)
}

// EntitiesInText implements graph.Store with one query: the text's word n-grams
// (graph.CandidateNames, at most 8,000) are matched by equality on the unique norm_name index, so
// the cost grows with the text, not with the number of entities. Names longer than
// graph.MaxNameWords words are never found.
func (s *Store) EntitiesInText(ctx context.Context, text string, limit int) ([]graph.Entity, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, err
	}
	candidates := graph.CandidateNames(text)
	if len(candidates) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, sqlEntitiesInText, candidates, graph.ClampLimit(limit))
	return collectEntities(rows, err)
}

func collectEntities(rows pgx.Rows, err error) ([]graph.Entity, error) {
	if err != nil {
		return nil, pgError(err, "Entity")
	}
	ents, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (graph.Entity, error) {
		var e graph.Entity
		err := row.Scan(&e.ID, &e.Name, &e.Kind, &e.Summary)
		return e, err
	})
	return ents, pgError(err, "Entity")
}

func collectRelations(rows pgx.Rows, err error) ([]graph.Relation, error) {
	if err != nil {
		return nil, pgError(err, "Relation")
	}
	rels, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (graph.Relation, error) {
		var r graph.Relation
		err := row.Scan(&r.ID, &r.Source, &r.Target, &r.Relation, &r.Fact, &r.ChunkID, &r.DocumentID,
			&r.ValidAt, &r.InvalidAt, &r.ExpiredAt, &r.CreatedAt)
		r.ValidAt, r.InvalidAt, r.ExpiredAt = utc(r.ValidAt), utc(r.InvalidAt), utc(r.ExpiredAt)
		r.CreatedAt = r.CreatedAt.UTC()
		return r, err
	})
	return rels, pgError(err, "Relation")
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// pgError translates PostgreSQL errors the caller can act on.
func pgError(err error, what string) error {
	if pgerr.Code(err) == "23503" { // foreign_key_violation: a fact names a document or chunk that is gone
		return ragplane.Errorf(ragplane.ENOTFOUND, "The document or chunk of a fact does not exist.")
	}
	return pgerr.Translate(err, "graph", what)
}
