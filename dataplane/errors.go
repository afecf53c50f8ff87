package dataplane

import "github.com/ragplane/ragplane/internal/pgerr"

// dbError translates tenant-database errors at the boundary (see pgerr.Translate): no rows ->
// ENOTFOUND, overload and timeouts -> EUNAVAILABLE; *ragplane.Error passes through; anything else
// is internal.
func dbError(err error) error {
	return pgerr.Translate(err, "tenant database", "Document")
}
