package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Doc is one corpus document of a BEIR folder.
type Doc struct {
	ID    string `json:"_id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Query is one query of a BEIR folder.
type Query struct {
	ID   string `json:"_id"`
	Text string `json:"text"`
}

// Qrels maps a query id to its judged documents and their grades.
type Qrels map[string]map[string]int

// Dataset is a BEIR folder: corpus.jsonl, queries.jsonl and qrels/test.tsv.
type Dataset struct {
	Corpus  []Doc
	Queries []Query
	Qrels   Qrels
}

// LoadDataset reads a BEIR folder.
func LoadDataset(dir string) (*Dataset, error) {
	ds := &Dataset{}
	if err := readJSONL(filepath.Join(dir, "corpus.jsonl"), func(line []byte) error {
		var d Doc
		if err := json.Unmarshal(line, &d); err != nil {
			return err
		}
		ds.Corpus = append(ds.Corpus, d)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readJSONL(filepath.Join(dir, "queries.jsonl"), func(line []byte) error {
		var q Query
		if err := json.Unmarshal(line, &q); err != nil {
			return err
		}
		ds.Queries = append(ds.Queries, q)
		return nil
	}); err != nil {
		return nil, err
	}
	q, err := readQrels(filepath.Join(dir, "qrels", "test.tsv"))
	if err != nil {
		return nil, err
	}
	ds.Qrels = q
	return ds, nil
}

// JudgedQueries returns the queries with at least one document of grade >= 1, in file order:
// the queries every metric is averaged over.
func (ds *Dataset) JudgedQueries() []Query {
	var out []Query
	for _, q := range ds.Queries {
		for _, g := range ds.Qrels[q.ID] {
			if g >= 1 {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

func readJSONL(path string, each func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if err := each(line); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// readQrels reads query-id<TAB>corpus-id<TAB>score lines; a first line that is not a number in
// its score column is the header.
func readQrels(path string) (Qrels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := Qrels{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 {
			return nil, fmt.Errorf("%s:%d: want 3 tab-separated columns, got %d", path, n, len(cols))
		}
		score, err := strconv.Atoi(strings.TrimSpace(cols[2]))
		if err != nil {
			if n == 1 {
				continue // header
			}
			return nil, fmt.Errorf("%s:%d: score: %w", path, n, err)
		}
		if out[cols[0]] == nil {
			out[cols[0]] = map[string]int{}
		}
		out[cols[0]][cols[1]] = score
	}
	return out, sc.Err()
}
