package neo4j

import "testing"

// SetDeleteGroupBatch lowers DeleteGroup's batch size for one test, so that a small graph takes
// several batches.
func SetDeleteGroupBatch(tb testing.TB, n int) {
	old := deleteGroupBatch
	deleteGroupBatch = n
	tb.Cleanup(func() { deleteGroupBatch = old })
}
