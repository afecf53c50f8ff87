package ragplane

import (
	"encoding/json"
	"time"
)

// AuditEntry records one change made through the control plane.
type AuditEntry struct {
	// ID orders entries.
	ID int64 `json:"id"`
	// Actor is who made the change ("admin", "reconciler", "tenant:<id>").
	Actor string `json:"actor"`
	// Action names the change, e.g. "tenant.create", "key.revoke".
	Action string `json:"action"`
	// Target is the object changed, e.g. "tenant/acme_corp".
	Target string `json:"target"`
	// Before and After are JSON snapshots of the object (absent on create and delete respectively).
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	// RequestID ties the entry to the request that made it.
	RequestID string `json:"request_id,omitempty"`
	// At is when the change was committed.
	At time.Time `json:"at"`
}
