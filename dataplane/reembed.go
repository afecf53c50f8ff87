package dataplane

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/dataplane/docstore"
)

// EmbeddingTarget is the model a tenant is re-embedded onto.
type EmbeddingTarget struct {
	Provider  string // "local" or "openai"
	Model     string
	Dimension int
}

// ReembedProgress reports how many chunks have their new vector, of how many.
type ReembedProgress func(done, total int64)

// Reembed moves a tenant's vectors onto another embedding model, online, as an operator task
// (`ragplane reembed`). The embedding model and dimension of a tenant are otherwise fixed: its
// vector column has the model's dimension. The steps, each safe to repeat after a crash:
//
//  1. A second vector column, embedding_next, of the target dimension, is filled chunk by chunk
//     (title and content, as ingestion embeds them) while the tenant keeps searching and
//     ingesting with the old model, and gets its own HNSW index.
//  2. In one transaction holding the chunks table exclusively (searches and writes of this tenant
//     wait, for about as long as it takes to embed what was ingested since step 1), the chunks
//     still missing a new vector get one, and the new column replaces the old, with the model's
//     name recorded as the column's comment.
//  3. The catalog's embedding settings change (audited) and workers follow within the config
//     propagation time. Until then a worker may embed a query with the old model and get a 400
//     naming the dimension: clients retry.
//
// A run that finds the column already carrying the target model's name (a crash between steps 2
// and 3) only does step 3. cfg is a worker's configuration (catalog, secret key, model directory,
// OpenAI settings) whose DatabaseURL may write to the catalog.
func Reembed(ctx context.Context, cfg Config, id ragplane.TenantID, to EmbeddingTarget, progress ReembedProgress, log *slog.Logger) error {
	store, err := catalog.Open(ctx, catalog.Config{URL: cfg.DatabaseURL, SecretKey: cfg.SecretKey, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	rt, err := store.TenantRuntime(ctx, id)
	if err != nil {
		return err
	}
	// A move between tiers copies the columns as they are: re-embed before or after it.
	if _, err := store.GetMove(ctx, id); err == nil {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is moving between isolation tiers: re-embed it once the move is done (ragplane tenants tier %s --wait 10m).", id, id)
	} else if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
		return err
	}
	if rt.DatabaseURL == "" {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q has no database (it is %s).", id, rt.Tenant.Status)
	}
	if rt.Offload != "" {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is offloaded to an archive while idle: restore it first (ragplane tenants wake %s --wait 5m).", id, id)
	}
	// A pool database has one vector column, of one dimension, for every tenant in it, and its
	// tenants' role may not change it: refused before anything is written, not halfway with a
	// permission error from PostgreSQL.
	if rt.Tenant.Tier() == ragplane.TierPooled {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is in the pooled tier, whose pool database has one embedding "+
			"dimension for all its tenants, so it cannot be re-embedded in place: move it to the siloed tier first "+
			"(isolation_tier siloed), or export it, restore the archive into a new siloed tenant and re-embed that one.", id)
	}
	current, err := rt.Resolve(nil)
	if err != nil {
		return err
	}
	set := current.Settings
	set.EmbeddingProvider, set.EmbeddingModel, set.EmbeddingDimension = to.Provider, to.Model, to.Dimension
	emb, err := newProviders(cfg.OpenAI, cfg.ModelDir, log).embedder(set)
	if err != nil {
		return err
	}
	if emb.Dimension() != to.Dimension {
		return ragplane.FieldErrorf("embedding_dimension", "The model gives %d dimensions, not %d.", emb.Dimension(), to.Dimension)
	}
	pcfg, err := pgxpool.ParseConfig(rt.DatabaseURL)
	if err != nil {
		return fmt.Errorf("tenant database url: %w", err)
	}
	pcfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The tenant's rows only (row level security). Its columns are changed with DDL, which only
	// the owner of a siloed tenant's tables may run. The tier is checked above; a role that does
	// not own the table (a database set up by hand, a tier the check does not know) is refused
	// here, before the first ALTER.
	db := tenantdb.Scope(pool, string(id))
	name := to.Provider + "/" + to.Model
	var comment string
	var owns bool
	if err := db.QueryRow(ctx, `select coalesce(col_description('chunks'::regclass, a.attnum), ''), pg_has_role(c.relowner, 'USAGE')
		from pg_attribute a join pg_class c on c.oid = a.attrelid
		where a.attrelid = 'chunks'::regclass and a.attname = 'embedding'`).Scan(&comment, &owns); err != nil {
		return err
	}
	if comment != name && !owns {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q's database role does not own its chunks table, so its "+
			"embedding column cannot be changed: only a siloed tenant can be re-embedded.", id)
	}
	if comment != name {
		if err := reembedChunks(ctx, db, emb, to.Dimension, name, progress); err != nil {
			return err
		}
	}
	_, err = store.SetEmbedding(ctx, id, to.Provider, to.Model, to.Dimension, catalog.Actor{Name: "ragplane reembed"})
	if err == nil {
		log.Info("tenant re-embedded", "tenant_id", id, "model", name, "dimension", to.Dimension)
	}
	return err
}

// reembedChunks does steps 1 and 2 of Reembed in the tenant's database.
func reembedChunks(ctx context.Context, pool *tenantdb.Scoped, emb Embedder, dim int, name string, progress ReembedProgress) error {
	// dim is an integer and name goes through quote_literal: both are safe in DDL.
	if _, err := pool.Exec(ctx, fmt.Sprintf(`alter table chunks add column if not exists embedding_next vector(%d)`, dim)); err != nil {
		return err
	}
	var total int64
	if err := pool.QueryRow(ctx, `select count(*) from chunks`).Scan(&total); err != nil {
		return err
	}
	embed := func(ctx context.Context, titles, contents []string) ([][]float32, error) {
		return embedTexts(ctx, emb, dim, titles, contents)
	}
	var done int64
	for {
		var ids []string
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			ids, err = docstore.EmbedMissing(ctx, tx, docstore.ColumnEmbeddingNext, embed)
			return err
		})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		done += int64(len(ids))
		if progress != nil {
			progress(done, max(total, done))
		}
	}
	if _, err := pool.Exec(ctx, `create index if not exists chunks_embedding_next on chunks using hnsw (embedding_next vector_cosine_ops)`); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `lock table chunks in access exclusive mode`); err != nil {
			return err
		}
		for {
			ids, err := docstore.EmbedMissing(ctx, tx, docstore.ColumnEmbeddingNext, embed)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
		}
		// Chunks waiting for background embedding have their vector now, from the new model.
		_, err := tx.Exec(ctx, `alter table chunks drop column embedding;
			alter table chunks rename column embedding_next to embedding;
			alter index chunks_embedding_next rename to chunks_embedding;
			update documents set status = 'ready' where status = 'embedding'`)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `select set_config('ragplane.model', $1, true)`, name)
		if err == nil {
			_, err = tx.Exec(ctx, `do $$ begin execute format('comment on column chunks.embedding is %L', current_setting('ragplane.model')); end $$`)
		}
		return err
	})
}
