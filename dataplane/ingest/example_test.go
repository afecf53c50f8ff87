package ingest_test

import (
	"fmt"

	"github.com/ragplane/ragplane/dataplane/ingest"
)

func ExampleExtract() {
	md := "# Release notes\r\n\r\nThe **new** [importer](https://example.com/docs) reads `PDF`.\r\n\r\n\r\n\r\n" +
		"| Format | Status |\r\n|---|---|\r\n| HTML | done |\r\n"
	text, err := ingest.Extract("", "notes.md", []byte(md))
	if err != nil {
		panic(err)
	}
	fmt.Println(text)
	// Output:
	// Release notes
	//
	// The new importer reads PDF.
	//
	// Format: HTML; Status: done
}

func ExampleChunk() {
	text := "Dr. Smith arrived at 9.30 a.m. on Monday. The clinic was busy.\n\n" +
		"Patients waited. Nobody complained, i.e. nobody said a word."
	pieces, err := ingest.Chunk(text, 24, 8)
	if err != nil {
		panic(err)
	}
	for _, p := range pieces {
		fmt.Printf("%d tokens [%d:%d] %q\n", p.Tokens, p.Start, p.End, p.Content)
	}
	// Output:
	// 24 tokens [0:62] "Dr. Smith arrived at 9.30 a.m. on Monday. The clinic was busy."
	// 11 tokens [42:80] "The clinic was busy.\n\nPatients waited."
	// 21 tokens [64:124] "Patients waited. Nobody complained, i.e. nobody said a word."
}
