// Package neo4j is the graph store on one Neo4j database shared by every tenant, namespaced the
// way Graphiti does it: every node and edge carries group_id = the tenant id, taken from the
// context (fail closed), and every Cypher pattern filters on it.
//
// The model: (:Entity {uuid, name, norm_name, kind, summary, group_id, created_at}) nodes and one
// edge type, [:RELATES_TO {uuid, name, fact, chunk_id, document_id, valid_at, invalid_at,
// expired_at, created_at, group_id}], whose name property is the relation ("acquired",
// "ceo_of"): relation types cannot be query parameters, and building Cypher from input is how
// tenants leak into each other, so every query is a package constant and every value a parameter.
package neo4j

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph"
)

// Store is the graph of every tenant in one Neo4j database. It implements graph.Store; each call
// is confined to the tenant in its context.
type Store struct {
	driver   neo4j.DriverWithContext
	database string
}

// New returns a store on the named database ("" for the server's default). The caller owns the
// driver. Run EnsureSchema once before use.
func New(driver neo4j.DriverWithContext, database string) *Store {
	return &Store{driver: driver, database: database}
}

// Schema: entity names are unique per tenant, and the lookups by tenant and by document are
// indexed.
const (
	cypherEntityConstraint = `CREATE CONSTRAINT ragplane_entity_group_norm_name IF NOT EXISTS
FOR (e:Entity) REQUIRE (e.group_id, e.norm_name) IS UNIQUE`
	cypherEntityGroupIndex = `CREATE INDEX ragplane_entity_group IF NOT EXISTS
FOR (e:Entity) ON (e.group_id)`
	cypherRelationDocumentIndex = `CREATE INDEX ragplane_relates_to_group_document IF NOT EXISTS
FOR ()-[r:RELATES_TO]-() ON (r.group_id, r.document_id)`
)

// Writes.
const (
	// The first display name stays; an empty kind is filled. SET on every matched entity also
	// write-locks it until commit, which orders concurrent writers of contradicting facts (they
	// share the entity at the relation's exclusive end).
	cypherUpsertEntities = `UNWIND $entities AS ent
MERGE (e:Entity {group_id: $group_id, norm_name: ent.norm_name})
ON CREATE SET e.uuid = ent.uuid, e.name = ent.name, e.kind = ent.kind, e.summary = ent.summary, e.created_at = $now
ON MATCH SET e.kind = CASE WHEN e.kind IS NULL OR size(e.kind) = 0 THEN ent.kind ELSE e.kind END`

	// cypherAddRelation creates the relation unless the same fact of the same chunk is there. A
	// contradicting current relation that started after it makes it arrive retired (invalid_at =
	// the earliest such start), as in Graphiti. It returns whether it created a current relation.
	cypherAddRelation = `MATCH (s:Entity {group_id: $group_id, norm_name: $source})
MATCH (t:Entity {group_id: $group_id, norm_name: $target})
WHERE NOT EXISTS {
  MATCH (s)-[d:RELATES_TO {group_id: $group_id, name: $relation, fact: $fact, chunk_id: $chunk_id, document_id: $document_id}]->(t)
}
OPTIONAL MATCH (s)-[a:RELATES_TO {group_id: $group_id, name: $relation}]->(other:Entity {group_id: $group_id})
WHERE $by_source AND other <> t AND a.invalid_at IS NULL AND a.expired_at IS NULL
  AND $valid_at IS NOT NULL AND a.valid_at > $valid_at
WITH s, t, min(a.valid_at) AS later_s
OPTIONAL MATCH (holder:Entity {group_id: $group_id})-[b:RELATES_TO {group_id: $group_id, name: $relation}]->(t)
WHERE $by_target AND holder <> s AND b.invalid_at IS NULL AND b.expired_at IS NULL
  AND $valid_at IS NOT NULL AND b.valid_at > $valid_at
WITH s, t, later_s, min(b.valid_at) AS later_t
WITH s, t, CASE WHEN later_s IS NULL THEN later_t WHEN later_t IS NULL OR later_s < later_t THEN later_s ELSE later_t END AS later
CREATE (s)-[r:RELATES_TO {group_id: $group_id, uuid: $uuid, name: $relation, fact: $fact, chunk_id: $chunk_id, document_id: $document_id, created_at: $now}]->(t)
SET r.valid_at = $valid_at, r.invalid_at = later, r.expired_at = CASE WHEN later IS NULL THEN null ELSE $now END
RETURN later IS NULL AS is_current`

	// The two retire statements run after a current relation was created: current contradicting
	// relations that started no later than it are retired at its valid_at, or now.
	cypherRetireBySource = `MATCH (s:Entity {group_id: $group_id, norm_name: $source})-[r:RELATES_TO {group_id: $group_id, name: $relation}]->(o:Entity {group_id: $group_id})
WHERE o.norm_name <> $target AND r.invalid_at IS NULL AND r.expired_at IS NULL
  AND (r.valid_at IS NULL OR r.valid_at <= coalesce($valid_at, $now))
SET r.invalid_at = coalesce($valid_at, $now), r.expired_at = $now`
	cypherRetireByTarget = `MATCH (o:Entity {group_id: $group_id})-[r:RELATES_TO {group_id: $group_id, name: $relation}]->(t:Entity {group_id: $group_id, norm_name: $target})
WHERE o.norm_name <> $source AND r.invalid_at IS NULL AND r.expired_at IS NULL
  AND (r.valid_at IS NULL OR r.valid_at <= coalesce($valid_at, $now))
SET r.invalid_at = coalesce($valid_at, $now), r.expired_at = $now`

	cypherDeleteDocument = `MATCH (s:Entity {group_id: $group_id})-[r:RELATES_TO {group_id: $group_id, document_id: $document_id}]->(t:Entity {group_id: $group_id})
DELETE r
WITH DISTINCT s, t
UNWIND [s, t] AS e
WITH DISTINCT e
WHERE NOT EXISTS { MATCH (e)-[x:RELATES_TO {group_id: $group_id}]-(y:Entity {group_id: $group_id}) }
DELETE e`

	// cypherDeleteGroupBatch removes up to $batch of a tenant's entities with every relationship
	// they have (DETACH). Every node the store writes is an Entity, and every relationship joins
	// two entities of its group, so repeating it until it deletes nothing removes the tenant's
	// whole graph; the label lets it seek the group_id index instead of scanning every node.
	cypherDeleteGroupBatch = `MATCH (e:Entity {group_id: $group_id})
WITH e LIMIT $batch
DETACH DELETE e`
)

// deleteGroupBatch is how many entities one DeleteGroup transaction removes: enough to be quick,
// few enough that a tenant with millions of facts never needs a transaction the size of its graph
// (tests lower it).
var deleteGroupBatch = 10000

// Reads.
const (
	cypherSearchEntities = `MATCH (e:Entity {group_id: $group_id})
WHERE e.norm_name CONTAINS $q
RETURN e.uuid AS id, e.name AS name, e.kind AS kind, e.summary AS summary
ORDER BY CASE WHEN e.norm_name STARTS WITH $q THEN 0 ELSE 1 END, size(e.norm_name), e.norm_name
LIMIT $limit`

	cypherEntityExists = `MATCH (e:Entity {group_id: $group_id, norm_name: $name})
RETURN e.uuid AS id`

	cypherEntityRelations = `MATCH (e:Entity {group_id: $group_id, norm_name: $name})-[r:RELATES_TO {group_id: $group_id}]-(o:Entity {group_id: $group_id})
WHERE r.invalid_at IS NULL AND r.expired_at IS NULL
WITH r, startNode(r) AS s, endNode(r) AS t
RETURN r.uuid AS id, s.name AS source, t.name AS target, r.name AS relation, r.fact AS fact,
  r.chunk_id AS chunk_id, r.document_id AS document_id, r.valid_at AS valid_at,
  r.invalid_at AS invalid_at, r.expired_at AS expired_at, r.created_at AS created_at
ORDER BY coalesce(r.valid_at, r.created_at) DESC, r.created_at DESC, r.name, t.norm_name, s.norm_name, r.uuid
LIMIT $limit`

	cypherEntityTimeline = `MATCH (e:Entity {group_id: $group_id, norm_name: $name})-[r:RELATES_TO {group_id: $group_id}]-(o:Entity {group_id: $group_id})
WITH r, startNode(r) AS s, endNode(r) AS t
RETURN r.uuid AS id, s.name AS source, t.name AS target, r.name AS relation, r.fact AS fact,
  r.chunk_id AS chunk_id, r.document_id AS document_id, r.valid_at AS valid_at,
  r.invalid_at AS invalid_at, r.expired_at AS expired_at, r.created_at AS created_at
ORDER BY coalesce(r.valid_at, r.created_at), r.created_at, r.name, t.norm_name, s.norm_name, r.uuid
LIMIT $limit`

	// A relation between two of the named entities is found from both ends: DISTINCT.
	cypherFactsForEntities = `MATCH (e:Entity {group_id: $group_id})-[r:RELATES_TO {group_id: $group_id}]-(o:Entity {group_id: $group_id})
WHERE e.norm_name IN $names AND r.invalid_at IS NULL AND r.expired_at IS NULL
WITH DISTINCT r
WITH r, startNode(r) AS s, endNode(r) AS t
RETURN r.uuid AS id, s.name AS source, t.name AS target, r.name AS relation, r.fact AS fact,
  r.chunk_id AS chunk_id, r.document_id AS document_id, r.valid_at AS valid_at,
  r.invalid_at AS invalid_at, r.expired_at AS expired_at, r.created_at AS created_at
ORDER BY coalesce(r.valid_at, r.created_at) DESC, r.created_at DESC, r.name, t.norm_name, s.norm_name, r.uuid
LIMIT $limit`

	// One seek of the (group_id, norm_name) constraint index per candidate n-gram.
	cypherEntitiesInText = `MATCH (e:Entity {group_id: $group_id})
WHERE e.norm_name IN $candidates
RETURN e.uuid AS id, e.name AS name, e.kind AS kind, e.summary AS summary
ORDER BY size(e.norm_name) DESC, e.norm_name
LIMIT $limit`
)

// EnsureSchema creates the constraint and indexes the store relies on, if missing. It is not
// tenant-scoped and needs no tenant in ctx.
func (s *Store) EnsureSchema(ctx context.Context) error {
	session := s.session(ctx, neo4j.AccessModeWrite)
	defer session.Close(ctx)
	for _, q := range []string{cypherEntityConstraint, cypherEntityGroupIndex, cypherRelationDocumentIndex} {
		_, err := session.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
			res, err := tx.Run(ctx, q, nil)
			if err != nil {
				return nil, err
			}
			_, err = res.Consume(ctx)
			return nil, err
		})
		if err != nil {
			return neo4jError(err, "ensure schema")
		}
	}
	return nil
}

// AddFacts implements graph.Store, in one write transaction (retried by the driver on transient
// errors). Errors: EINVALID, EUNAUTHORIZED, EUNAVAILABLE. Neo4j has no documents or chunks to
// check, so unknown ids are stored as given.
func (s *Store) AddFacts(ctx context.Context, documentID string, facts []graph.Fact) error {
	group, err := groupID(ctx)
	if err != nil {
		return err
	}
	if err := graph.ValidateFacts(documentID, facts); err != nil {
		return err
	}
	if len(facts) == 0 {
		return nil
	}
	now := time.Now().UTC()
	var entities []any
	for _, e := range graph.FactEntities(facts) {
		entities = append(entities, map[string]any{
			"uuid": uuid.NewString(), "name": e.Name, "norm_name": graph.NormalizeName(e.Name), "kind": e.Kind, "summary": "",
		})
	}
	session := s.session(ctx, neo4j.AccessModeWrite)
	defer session.Close(ctx)
	_, err = session.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		if err := run(ctx, tx, cypherUpsertEntities, map[string]any{"group_id": group, "entities": entities, "now": now}); err != nil {
			return nil, err
		}
		for _, f := range facts {
			bySource, byTarget := graph.SingleValued(f.Relation), graph.SingleHolder(f.Relation)
			p := map[string]any{
				"group_id": group, "source": graph.NormalizeName(f.Source), "target": graph.NormalizeName(f.Target),
				"relation": f.Relation, "fact": strings.TrimSpace(f.Fact), "chunk_id": f.ChunkID,
				"document_id": documentID, "valid_at": nil, "now": now, "uuid": uuid.NewString(),
				"by_source": bySource, "by_target": byTarget,
			}
			if f.ValidAt != nil {
				p["valid_at"] = f.ValidAt.UTC()
			}
			res, err := tx.Run(ctx, cypherAddRelation, p)
			if err != nil {
				return nil, err
			}
			records, err := res.Collect(ctx)
			if err != nil {
				return nil, err
			}
			if len(records) == 0 {
				continue // the same fact of the same chunk is there already
			}
			if current, _, err := neo4j.GetRecordValue[bool](records[0], "is_current"); err != nil {
				return nil, err
			} else if !current {
				continue // arrived retired: it retires nothing
			}
			if bySource {
				if err := run(ctx, tx, cypherRetireBySource, p); err != nil {
					return nil, err
				}
			}
			if byTarget {
				if err := run(ctx, tx, cypherRetireByTarget, p); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	})
	return neo4jError(err, "add facts")
}

// DeleteDocument implements graph.Store. Errors: EINVALID, EUNAUTHORIZED, EUNAVAILABLE (also when
// a concurrent AddFacts attached a relation to an entity being deleted: retry).
func (s *Store) DeleteDocument(ctx context.Context, documentID string) error {
	group, err := groupID(ctx)
	if err != nil {
		return err
	}
	if !graph.ValidID(documentID) {
		return ragplane.FieldErrorf("document_id", "A document id is a UUID.")
	}
	session := s.session(ctx, neo4j.AccessModeWrite)
	defer session.Close(ctx)
	_, err = session.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		return nil, run(ctx, tx, cypherDeleteDocument, map[string]any{"group_id": group, "document_id": documentID})
	})
	return neo4jError(err, "delete document graph")
}

// DeleteGroup removes every node and relationship of tenant (group_id = its id) and returns how
// many of each it removed. It is not scoped by the context: the control plane calls it when it
// deletes the tenant. It works in batches of deleteGroupBatch entities, each its own transaction,
// so an interrupted call leaves a smaller graph that the next call finishes; a tenant with no graph
// removes nothing. Errors: EINVALID (no tenant), EUNAVAILABLE (Neo4j unreachable: retry).
func (s *Store) DeleteGroup(ctx context.Context, tenant ragplane.TenantID) (nodes, rels int64, err error) {
	if tenant == "" {
		return 0, 0, ragplane.Errorf(ragplane.EINVALID, "A graph group needs a tenant id.")
	}
	session := s.session(ctx, neo4j.AccessModeWrite)
	defer session.Close(ctx)
	p := map[string]any{"group_id": string(tenant), "batch": deleteGroupBatch}
	for {
		out, err := session.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
			res, err := tx.Run(ctx, cypherDeleteGroupBatch, p)
			if err != nil {
				return nil, err
			}
			return res.Consume(ctx)
		})
		if err != nil {
			return nodes, rels, neo4jError(err, "delete group")
		}
		c := out.(neo4j.ResultSummary).Counters()
		nodes += int64(c.NodesDeleted())
		rels += int64(c.RelationshipsDeleted())
		if c.NodesDeleted() == 0 {
			return nodes, rels, nil
		}
	}
}

// SearchEntities implements graph.Store. CONTAINS has no wildcards, so q matches literally. Cost:
// a scan of the tenant's entities (group_id index).
func (s *Store) SearchEntities(ctx context.Context, q string, limit int) ([]graph.Entity, error) {
	group, err := groupID(ctx)
	if err != nil {
		return nil, err
	}
	n := graph.NormalizeName(q)
	if n == "" {
		return nil, ragplane.FieldErrorf("q", "A search needs a name.")
	}
	return s.readEntities(ctx, cypherSearchEntities, map[string]any{"group_id": group, "q": n, "limit": graph.ClampLimit(limit)})
}

// EntityRelations implements graph.Store.
func (s *Store) EntityRelations(ctx context.Context, name string, limit int) ([]graph.Relation, error) {
	return s.entityRelations(ctx, cypherEntityRelations, name, graph.ClampLimit(limit))
}

// EntityTimeline implements graph.Store.
func (s *Store) EntityTimeline(ctx context.Context, name string) ([]graph.Relation, error) {
	return s.entityRelations(ctx, cypherEntityTimeline, name, graph.MaxLimit)
}

func (s *Store) entityRelations(ctx context.Context, query, name string, limit int) ([]graph.Relation, error) {
	group, err := groupID(ctx)
	if err != nil {
		return nil, err
	}
	p := map[string]any{"group_id": group, "name": graph.NormalizeName(name), "limit": limit}
	session := s.session(ctx, neo4j.AccessModeRead)
	defer session.Close(ctx)
	out, err := session.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, cypherEntityExists, p)
		if err != nil {
			return nil, err
		}
		if found, err := res.Collect(ctx); err != nil {
			return nil, err
		} else if len(found) == 0 {
			return nil, ragplane.Errorf(ragplane.ENOTFOUND, "Entity not found.")
		}
		return collectRelations(ctx, tx, query, p)
	})
	if err != nil {
		return nil, neo4jError(err, "entity relations")
	}
	return out.([]graph.Relation), nil
}

// FactsForEntities implements graph.Store. At most MaxLimit names are looked up.
func (s *Store) FactsForEntities(ctx context.Context, names []string, limit int) ([]graph.Relation, error) {
	group, err := groupID(ctx)
	if err != nil {
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
	session := s.session(ctx, neo4j.AccessModeRead)
	defer session.Close(ctx)
	out, err := session.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		return collectRelations(ctx, tx, cypherFactsForEntities,
			map[string]any{"group_id": group, "names": norms, "limit": graph.ClampLimit(limit)})
	})
	if err != nil {
		return nil, neo4jError(err, "facts for entities")
	}
	return out.([]graph.Relation), nil
}

// EntitiesInText implements graph.Store: one query matching the text's word n-grams
// (graph.CandidateNames, at most 8,000) against the unique (group_id, norm_name) index. Names
// longer than graph.MaxNameWords words are never found.
func (s *Store) EntitiesInText(ctx context.Context, text string, limit int) ([]graph.Entity, error) {
	group, err := groupID(ctx)
	if err != nil {
		return nil, err
	}
	candidates := graph.CandidateNames(text)
	if len(candidates) == 0 {
		return nil, nil
	}
	return s.readEntities(ctx, cypherEntitiesInText, map[string]any{"group_id": group, "candidates": candidates, "limit": graph.ClampLimit(limit)})
}

// groupID is the tenant of ctx, the group_id of everything the call touches.
func groupID(ctx context.Context) (string, error) {
	tenant, err := ragplane.TenantFromContext(ctx)
	return string(tenant), err
}

func (s *Store) session(ctx context.Context, mode neo4j.AccessMode) neo4j.SessionWithContext {
	return s.driver.NewSession(ctx, neo4j.SessionConfig{DatabaseName: s.database, AccessMode: mode})
}

func run(ctx context.Context, tx neo4j.ManagedTransaction, query string, params map[string]any) error {
	res, err := tx.Run(ctx, query, params)
	if err != nil {
		return err
	}
	_, err = res.Consume(ctx)
	return err
}

func (s *Store) readEntities(ctx context.Context, query string, params map[string]any) ([]graph.Entity, error) {
	session := s.session(ctx, neo4j.AccessModeRead)
	defer session.Close(ctx)
	out, err := session.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, query, params)
		if err != nil {
			return nil, err
		}
		return neo4j.CollectTWithContext(ctx, res, func(rec *neo4j.Record) (graph.Entity, error) {
			var e graph.Entity
			var err error
			e.ID, err = str(rec, "id", err)
			e.Name, err = str(rec, "name", err)
			e.Kind, err = str(rec, "kind", err)
			e.Summary, err = str(rec, "summary", err)
			return e, err
		})
	})
	if err != nil {
		return nil, neo4jError(err, "read entities")
	}
	return out.([]graph.Entity), nil
}

func collectRelations(ctx context.Context, tx neo4j.ManagedTransaction, query string, params map[string]any) ([]graph.Relation, error) {
	res, err := tx.Run(ctx, query, params)
	if err != nil {
		return nil, err
	}
	return neo4j.CollectTWithContext(ctx, res, func(rec *neo4j.Record) (graph.Relation, error) {
		var r graph.Relation
		var err error
		r.ID, err = str(rec, "id", err)
		r.Source, err = str(rec, "source", err)
		r.Target, err = str(rec, "target", err)
		r.Relation, err = str(rec, "relation", err)
		r.Fact, err = str(rec, "fact", err)
		r.ChunkID, err = str(rec, "chunk_id", err)
		r.DocumentID, err = str(rec, "document_id", err)
		r.ValidAt, err = timeValue(rec, "valid_at", err)
		r.InvalidAt, err = timeValue(rec, "invalid_at", err)
		r.ExpiredAt, err = timeValue(rec, "expired_at", err)
		var created *time.Time
		if created, err = timeValue(rec, "created_at", err); created != nil {
			r.CreatedAt = *created
		}
		return r, err
	})
}

// str reads a string column (null is ""), keeping the first error.
func str(rec *neo4j.Record, key string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	v, _, err := neo4j.GetRecordValue[string](rec, key)
	return v, err
}

// timeValue reads a nullable DATETIME column as UTC, keeping the first error.
func timeValue(rec *neo4j.Record, key string, err error) (*time.Time, error) {
	if err != nil {
		return nil, err
	}
	v, isNil, err := neo4j.GetRecordValue[time.Time](rec, key)
	if err != nil || isNil {
		return nil, err
	}
	v = v.UTC()
	return &v, nil
}

// neo4jError translates driver errors the caller can act on.
func neo4jError(err error, what string) error {
	var re *ragplane.Error
	var ne *neo4j.Neo4jError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return err
	case errors.Is(err, context.DeadlineExceeded), neo4j.IsConnectivityError(err), neo4j.IsRetryable(err),
		neo4j.IsTransactionExecutionLimit(err):
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The graph database is unavailable; retry.")
	case errors.As(err, &ne) && ne.Code == "Neo.ClientError.Schema.ConstraintValidationFailed":
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The graph changed during the request; retry.")
	}
	return fmt.Errorf("graph: %s: %w", what, err)
}
