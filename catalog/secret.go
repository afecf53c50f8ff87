package catalog

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MinSecretKeyLen is the shortest RAGPLANE_SECRET_KEY accepted.
const MinSecretKeyLen = 32

// Sealer encrypts secrets at rest (tenant database URLs, JWT private keys) with AES-256-GCM.
// The key is derived from the operator's secret with HKDF-SHA256; every ciphertext is bound to
// a context string (e.g. the tenant id) so a sealed value cannot be moved to another row.
type Sealer struct {
	aead cipher.AEAD
}

const sealVersion = 1

// NewSealer derives the encryption key from secret, which must be at least MinSecretKeyLen bytes.
func NewSealer(secret string) (*Sealer, error) {
	if len(secret) < MinSecretKeyLen {
		return nil, fmt.Errorf("secret key must be at least %d bytes", MinSecretKeyLen)
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, "ragplane catalog seal v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to context.
func (s *Sealer) Seal(plaintext []byte, context string) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // crypto/rand.Read never fails
	return s.aead.Seal(out, out[1:], plaintext, []byte(context))
}

// Open decrypts a value made by Seal with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errors.New("sealed value has an unknown format")
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, errors.New("sealed value cannot be opened with this key")
	}
	return pt, nil
}
