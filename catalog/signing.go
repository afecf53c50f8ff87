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
	// Private is nil when the key is only published, not used for signing.
	Private ed25519.PrivateKey
	// Public verifies tokens.
	Public ed25519.PublicKey
	// ActiveAt is when the key started signing; PublishUntil (if set) is when it leaves the JWKS.
	ActiveAt     time.Time
	PublishUntil *time.Time
}

// signingLock serialises rotation among control-plane replicas.
const signingLock = 0x52504b31 // "RPK1"

// EnsureSigningKey makes sure a signing key younger than rotateEvery exists, creating one (and
// retiring the previous one after overlap) if not. It returns true if it rotated. overlap must be at
// least the longest token lifetime, so the retired key stays published while its tokens live.
func (s *Store) EnsureSigningKey(ctx context.Context, rotateEvery, overlap time.Duration) (bool, error) {
	return s.rotate(ctx, rotateEvery, overlap, false)
}

// RotateSigningKey creates a new signing key now; the previous one stays published for overlap.
func (s *Store) RotateSigningKey(ctx context.Context, overlap time.Duration) error {
	_, err := s.rotate(ctx, 0, overlap, true)
	return err
}

func (s *Store) rotate(ctx context.Context, rotateEvery, overlap time.Duration, force bool) (bool, error) {
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
		if _, err := tx.Exec(ctx, `update signing_keys set publish_until = now() + $1::interval where publish_until is null`,
			fmt.Sprintf("%d milliseconds", overlap.Milliseconds())); err != nil {
			return pgError(err, "Signing keys")
		}
		if _, err := tx.Exec(ctx, `insert into signing_keys (kid, alg, private_key_sealed, public_key, active_at)
			values ($1, 'EdDSA', $2, $3, clock_timestamp())`,
			kid, s.sealer.Seal(priv, "signing-key:"+kid), []byte(pub)); err != nil {
			return pgError(err, "Signing keys")
		}
		// Keys out of the JWKS for a day are of no more use to anyone.
		if _, err := tx.Exec(ctx, `delete from signing_keys where publish_until < now() - interval '1 day'`); err != nil {
			return pgError(err, "Signing keys")
		}
		rotated = true
		return audit(ctx, tx, Actor{Name: "controlplane"}, "signing_key.rotate", "signing_key/"+kid, nil, map[string]string{"kid": kid})
	})
	return rotated, err
}

// SigningKeys returns the published keys, newest first; the first one signs. Retired keys come
// without their private half.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.pool.Query(ctx, `select kid, alg, private_key_sealed, public_key, active_at, publish_until
		from signing_keys where publish_until is null or publish_until > now() order by active_at desc, kid`)
	if err != nil {
		return nil, pgError(err, "Signing keys")
	}
	defer rows.Close()
	var keys []SigningKey
	for rows.Next() {
		var k SigningKey
		var sealed, pub []byte
		if err := rows.Scan(&k.KID, &k.Alg, &sealed, &pub, &k.ActiveAt, &k.PublishUntil); err != nil {
			return nil, pgError(err, "Signing keys")
		}
		k.Public = ed25519.PublicKey(pub)
		if k.PublishUntil == nil {
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
