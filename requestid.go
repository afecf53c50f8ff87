package ragplane

import (
	"crypto/rand"
	"encoding/hex"
)

// NewRequestID returns a random request id (128 bits, hex).
func NewRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
