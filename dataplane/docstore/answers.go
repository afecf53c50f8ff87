package docstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// AnswerTTL is how long the answer of a query sent with an Idempotency-Key is kept for replay. A
// key older than this is forgotten: the same request with it is answered (and billed) anew. Clients
// retry within seconds or minutes; a day bounds the table without surprising a slow retry.
const AnswerTTL = 24 * time.Hour

// pruneBatch is the most expired answers one StoreAnswer deletes, so pruning costs every writer a
// little and none a lot.
const pruneBatch = 100

// StoredAnswer returns the response body of the query recorded under an idempotency key less than
// AnswerTTL ago, and whether there is one. Errors: ECONFLICT (the key was used for a request with
// another hash), EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) StoredAnswer(ctx context.Context, key string, requestHash []byte) ([]byte, bool, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, false, err
	}
	body, found, err := lookupAnswer(ctx, s.db, key, requestHash)
	if err != nil {
		return nil, false, dbError(err)
	}
	return body, found, nil
}

// StoreAnswer records body, the response to a query, under an idempotency key, and prunes answers
// older than AnswerTTL. When another request recorded the key first (two first requests with one
// key, racing), the first one's body is returned with stored false: the caller answers that and
// bills nothing. Errors: ECONFLICT (the racing request had another hash), EUNAVAILABLE,
// EUNAUTHORIZED.
func (s *Store) StoreAnswer(ctx context.Context, key string, requestHash, body []byte) (out []byte, stored bool, err error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, false, err
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// An expired record of this key goes first, so the key can be used again; then up to
		// pruneBatch other expired ones, skipping those another writer is deleting.
		if _, err := tx.Exec(ctx, `delete from query_results where key = $1 and created_at < now() - make_interval(secs => $2)`,
			key, AnswerTTL.Seconds()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from query_results where key in (select key from query_results
			where created_at < now() - make_interval(secs => $1) order by created_at limit $2 for update skip locked)`,
			AnswerTTL.Seconds(), pruneBatch); err != nil {
			return err
		}
		// A racing insert of the same key makes this one wait for it, then do nothing.
		tag, err := tx.Exec(ctx, `insert into query_results (key, request_hash, body) values ($1, $2, $3) on conflict (tenant_id, key) do nothing`,
			key, requestHash, body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			out, stored = body, true
			return nil
		}
		var found bool
		out, found, err = lookupAnswer(ctx, tx, key, requestHash)
		if err == nil && !found {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "The idempotency record changed while it was written; retry.")
		}
		return err
	})
	if err != nil {
		return nil, false, dbError(err)
	}
	return out, stored, nil
}

func lookupAnswer(ctx context.Context, q querier, key string, requestHash []byte) ([]byte, bool, error) {
	var hash, body []byte
	err := q.QueryRow(ctx, `select request_hash, body from query_results where key = $1 and created_at >= now() - make_interval(secs => $2)`,
		key, AnswerTTL.Seconds()).Scan(&hash, &body)
	if err == pgx.ErrNoRows {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if string(hash) != string(requestHash) {
		return nil, false, errKeyReused
	}
	return body, true, nil
}
