package xds

import (
	"strconv"
	"strings"
)

// Version is the current system version of a type: what a proxy ACKs once it holds the type's
// current resources.
func (s *Server) Version(typeURL string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version(typeURL)
}

// AckedByAll reports whether every connected stream that asked for typeURL has ACKed version or a
// later one of this server (true when there is none). A stream that asked and has not ACKed yet
// does not hold it; one that rejected a later response still runs the version it ACKed.
func (t *tracker) ackedByAll(typeURL, version string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.streams {
		if !s.requested[typeURL] {
			continue
		}
		if !versionAtLeast(s.Types[typeURL].AckedVersion, version) {
			return false
		}
	}
	return true
}

// AckedByAll reports whether every connected proxy that subscribes to typeURL has ACKed version
// (from Version) or a later one, so holds what that version carried; true when none subscribes.
func (s *Server) AckedByAll(typeURL, version string) bool {
	return s.tracker.ackedByAll(typeURL, version)
}

// versionAtLeast reports whether got is want or a later version of the same server instance.
func versionAtLeast(got, want string) bool {
	gp, gn, ok1 := splitVersion(got)
	wp, wn, ok2 := splitVersion(want)
	return ok1 && ok2 && gp == wp && gn >= wn
}

// splitVersion splits "<prefix><counter>" (the prefix ends in a dot) into its parts.
func splitVersion(v string) (prefix string, counter uint64, ok bool) {
	i := strings.LastIndexByte(v, '.') + 1
	n, err := strconv.ParseUint(v[i:], 10, 64)
	return v[:i], n, err == nil
}
