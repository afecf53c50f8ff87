package catalog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SigningKey is a key that signs tenant JWTs (EdDSA over Ed25519).
type SigningKey struct {
	// KID is the key id carried in the token header.
	KID string
	// Alg is the JWS algorithm, "EdDSA".
	Alg string
	// Private is nil when the key is retired (a newer key signs): it is only published.
	Private ed25519.PrivateKey
	// Public verifies tokens.
	Public ed25519.PublicKey
	// ActiveAt is when the key starts (or started) signing, by the catalog's clock. A key whose
	// ActiveAt is still ahead is pending: published so that every proxy learns it, not yet used.
	// PublishUntil (if set) is when it leaves the JWKS.
	ActiveAt     time.Time
	PublishUntil *time.Time
}

// signingLock serialises rotation among control-plane replicas.
const signingLock = 0x52504b31 // "RPK1"

// EnsureSigningKey makes sure a signing key younger than rotateEvery exists, creating one if not.
// It returns true if it rotated. The new key is published at once and starts signing publishFor
// later (the very first key signs at once: no proxy can hold a token yet); until then the previous
// key signs. The previous key stays published for overlap after the new one starts signing;
// overlap must be at least the longest token lifetime, so it stays published while its tokens live.
func (s *Store) EnsureSigningKey(ctx context.Context, rotateEvery, overlap, publishFor time.Duration) (bool, error) {
	return s.rotate(ctx, rotateEvery, overlap, publishFor, false, Actor{Name: "controlplane"})
}

// RotateSigningKey creates a new signing key now, published at once and signing publishFor later;
// the previous one signs until then and stays published for overlap after. The audit entry names
// actor, the operator who asked.
func (s *Store) RotateSigningKey(ctx context.Context, overlap, publishFor time.Duration, actor Actor) error {
	_, err := s.rotate(ctx, 0, overlap, publishFor, true, actor)
	return err
}

// ReportKeyHolder records that every proxy connected to the control-plane replica holds the
// signing keys held (has ACKed a configuration carrying them). A replica reports at start (holding
// none yet) and then at least every liveFor given to ActivateSigningKey while it runs.
func (s *Store) ReportKeyHolder(ctx context.Context, replica string, held []string) error {
	if held == nil {
		held = []string{}
	}
	_, err := s.pool.Exec(ctx, `insert into signing_key_holders (replica, seen_at, held_kids)
		values ($1, clock_timestamp(), $2) on conflict (replica) do update
		set seen_at = excluded.seen_at, held_kids = excluded.held_kids`, replica, held)
	return pgError(err, "Signing key holders")
}

// ForgetKeyHolder removes a replica's report (it stops, and its proxies go elsewhere).
func (s *Store) ForgetKeyHolder(ctx context.Context, replica string) error {
	_, err := s.pool.Exec(ctx, `delete from signing_key_holders where replica = $1`, replica)
	return pgError(err, "Signing key holders")
}

// ActivateSigningKey makes the pending key kid sign from now on instead of at its ActiveAt, but
// only if every replica that reported within liveFor holds it: then every proxy does. It reports
// whether it activated the key. Replicas silent for longer are presumed gone; their reports are
// deleted after a day.
func (s *Store) ActivateSigningKey(ctx context.Context, kid string, liveFor time.Duration) (bool, error) {
	var activated bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Serialised with rotation, so a key superseded meanwhile is not activated.
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, signingLock); err != nil {
			return pgError(err, "Signing keys")
		}
		tag, err := tx.Exec(ctx, `update signing_keys set active_at = clock_timestamp()
			where kid = $1 and active_at > clock_timestamp() and publish_until is null
			and not exists (select 1 from signing_key_holders h
				where h.seen_at > clock_timestamp() - $2::interval and not ($1 = any (h.held_kids)))`,
			kid, fmt.Sprintf("%d milliseconds", liveFor.Milliseconds()))
		if err != nil {
			return pgError(err, "Signing keys")
		}
		activated = tag.RowsAffected() > 0
		if _, err := tx.Exec(ctx, `delete from signing_key_holders where seen_at < clock_timestamp() - interval '1 day'`); err != nil {
			return pgError(err, "Signing key holders")
		}
		return nil
	})
	return activated, err
}

func (s *Store) rotate(ctx context.Context, rotateEvery, overlap, publishFor time.Duration, force bool, actor Actor) (bool, error) {
	rotated := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, signingLock); err != nil {
			return pgError(err, "Signing keys")
		}
		var newest *time.Time
		if err := tx.QueryRow(ctx, `select max(active_at) from signing_keys`).Scan(&newest); err != nil {
			return pgError(err, "Signing keys")
		}
		if !force && newest != nil && time.Since(*newest) < rotateEvery {
			return nil
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		kid := "k" + randomToken(10)
		if newest == nil {
			publishFor = 0 // the first key: no proxy holds a token to refuse
		}
		var activeAt time.Time
		if err := tx.QueryRow(ctx, `insert into signing_keys (kid, alg, private_key_sealed, public_key, active_at)
			values ($1, 'EdDSA', $2, $3, clock_timestamp() + $4::interval) returning active_at`,
			kid, s.sealer.Seal(priv, "signing-key:"+kid), []byte(pub),
			fmt.Sprintf("%d milliseconds", publishFor.Milliseconds())).Scan(&activeAt); err != nil {
			return pgError(err, "Signing keys")
		}
		// The keys it supersedes sign until it is active, and stay published overlap longer.
		if _, err := tx.Exec(ctx, `update signing_keys set publish_until = $2::timestamptz + $3::interval
			where publish_until is null and kid <> $1`,
			kid, activeAt, fmt.Sprintf("%d milliseconds", overlap.Milliseconds())); err != nil {
			return pgError(err, "Signing keys")
		}
		// Keys out of the JWKS for a day are of no more use to anyone.
		if _, err := tx.Exec(ctx, `delete from signing_keys where publish_until < now() - interval '1 day'`); err != nil {
			return pgError(err, "Signing keys")
		}
		rotated = true
		return audit(ctx, tx, actor, "signing_key.rotate", "signing_key/"+kid, nil, map[string]string{"kid": kid})
	})
	return rotated, err
}

// SigningKeys returns the published keys, newest (by ActiveAt) first: pending keys, then the one
// signing now, then retired ones. The signer is the first whose ActiveAt has come. Retired keys
// (a newer key is active) come without their private half.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.pool.Query(ctx, `select k.kid, k.alg, k.private_key_sealed, k.public_key, k.active_at, k.publish_until,
			exists (select 1 from signing_keys n where n.active_at > k.active_at and n.active_at <= clock_timestamp()) as retired
		from signing_keys k where k.publish_until is null or k.publish_until > now() order by k.active_at desc, k.kid`)
	if err != nil {
		return nil, pgError(err, "Signing keys")
	}
	defer rows.Close()
	var keys []SigningKey
	for rows.Next() {
		var k SigningKey
		var sealed, pub []byte
		var retired bool
		if err := rows.Scan(&k.KID, &k.Alg, &sealed, &pub, &k.ActiveAt, &k.PublishUntil, &retired); err != nil {
			return nil, pgError(err, "Signing keys")
		}
		k.Public = ed25519.PublicKey(pub)
		if !retired {
			priv, err := s.sealer.Open(sealed, "signing-key:"+k.KID)
			if err != nil {
				return nil, fmt.Errorf("catalog: signing key %s: %w", k.KID, err)
			}
			k.Private = ed25519.PrivateKey(priv)
		}
		keys = append(keys, k)
	}
	return keys, pgError(rows.Err(), "Signing keys")
}
