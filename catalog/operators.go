package catalog

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// Operator roles: what an operator token may do on the admin API.
const (
	// OperatorAdmin may do everything, including managing operators.
	OperatorAdmin = "admin"
	// OperatorViewer may read everything an admin can, and change nothing.
	OperatorViewer = "viewer"
	// OperatorBilling may read tenants, plans, usage and metrics, and change nothing.
	OperatorBilling = "billing"
)

// ValidOperatorRole reports whether r is an operator role.
func ValidOperatorRole(r string) bool {
	return r == OperatorAdmin || r == OperatorViewer || r == OperatorBilling
}

// operatorName is the shape of an operator's name (the catalog checks it too).
var operatorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Operator tokens look like "rpo_<secret>"; the secret carries 160 random bits.
const operatorScheme = "rpo"

// Operator is a named operator identity on the admin API.
type Operator struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// NewOperator is a request for an operator identity.
type NewOperator struct {
	// Name identifies the operator in the audit log: 1-63 of a-z, 0-9, '_', '.', '-'.
	Name string `json:"name"`
	// Role is admin, viewer or billing.
	Role string `json:"role"`
}

// CreateOperator creates an operator and returns it with its token, which is never retrievable
// again. Errors: EINVALID naming the field, ECONFLICT if the name is taken (revoked names stay
// taken, so the audit log keeps meaning one person).
func (s *Store) CreateOperator(ctx context.Context, n NewOperator, actor Actor) (Operator, string, error) {
	var o Operator
	if !operatorName.MatchString(n.Name) {
		return o, "", ragplane.FieldErrorf("name", "Operator name must be 1-63 characters of a-z, 0-9, '_', '.' or '-', starting with a letter or digit.")
	}
	if !ValidOperatorRole(n.Role) {
		return o, "", ragplane.FieldErrorf("role", "Role must be admin, viewer or billing.")
	}
	token := operatorScheme + "_" + randomToken(20)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `insert into operators (name, role, token_hash, created_by) values ($1, $2, $3, $4)
			returning name, role, created_at, created_by, revoked_at`,
			n.Name, n.Role, hashKey(token), actor.Name).Scan(&o.Name, &o.Role, &o.CreatedAt, &o.CreatedBy, &o.RevokedAt)
		if err != nil {
			return pgError(err, "Operator")
		}
		return audit(ctx, tx, actor, "operator.create", "operator/"+o.Name, nil, o)
	})
	if err != nil {
		return Operator{}, "", err
	}
	return o, token, nil
}

// ListOperators lists every operator, revoked ones included, by name.
func (s *Store) ListOperators(ctx context.Context) ([]Operator, error) {
	rows, err := s.pool.Query(ctx, `select name, role, created_at, created_by, revoked_at from operators order by name`)
	if err != nil {
		return nil, err
	}
	ops, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Operator, error) {
		var o Operator
		err := r.Scan(&o.Name, &o.Role, &o.CreatedAt, &o.CreatedBy, &o.RevokedAt)
		return o, err
	})
	if ops == nil {
		ops = []Operator{}
	}
	return ops, err
}

// RevokeOperator revokes an operator's token at once. Errors: ENOTFOUND.
func (s *Store) RevokeOperator(ctx context.Context, name string, actor Actor) (Operator, error) {
	var o Operator
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `update operators set revoked_at = coalesce(revoked_at, now()) where name = $1
			returning name, role, created_at, created_by, revoked_at`, name).Scan(&o.Name, &o.Role, &o.CreatedAt, &o.CreatedBy, &o.RevokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ragplane.Errorf(ragplane.ENOTFOUND, "Operator not found.")
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, actor, "operator.revoke", "operator/"+o.Name, nil, o)
	})
	return o, err
}

// OperatorByToken finds the unrevoked operator whose token is token. The lookup is by the token's
// hash, so it reveals nothing about other tokens. Errors: ENOTFOUND.
func (s *Store) OperatorByToken(ctx context.Context, token string) (Operator, error) {
	var o Operator
	err := s.pool.QueryRow(ctx, `select name, role, created_at, created_by, revoked_at from operators
		where token_hash = $1 and revoked_at is null`, hashKey(token)).Scan(&o.Name, &o.Role, &o.CreatedAt, &o.CreatedBy, &o.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, ragplane.Errorf(ragplane.ENOTFOUND, "Operator not found.")
	}
	return o, err
}
