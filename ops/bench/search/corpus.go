package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// A sourceDoc is one document of natural English text found on this machine.
type sourceDoc struct {
	Kind   string // "dbpedia", "go" or "man"
	Title  string
	Source string
	Text   string // paragraphs separated by blank lines
	// Lead is what questions are made from: the dbpedia abstract, a Go package's "Package x ..."
	// sentence, a manual page's NAME description.
	Lead string
}

// corpusSources says where to read text. Nothing is copied into the repository: it is read at
// run time from these paths.
type corpusSources struct {
	DBpedia string   // a BEIR corpus.jsonl
	GoDirs  []string // GOROOT/src, the module cache: Go doc comments
	ManDirs []string // man1..man8 directories of gzipped manual pages
}

// gather calls emit with every document of the sources, in a fixed order (DBpedia, then the
// manual pages and the Go sources interleaved so that a smaller corpus still mixes them), until
// emit returns false. Paragraphs seen before (licence headers, a module cached in several
// versions, generated code) are dropped, so no text is indexed twice.
func gather(src corpusSources, emit func(sourceDoc) bool) error {
	seen := map[uint64]bool{}
	fresh := func(p string) bool {
		h := fnv.New64a()
		h.Write([]byte(p))
		k := h.Sum64()
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	if src.DBpedia != "" {
		more, err := readDBpedia(src.DBpedia, fresh, emit)
		if err != nil || !more {
			return err
		}
	}
	var man, code []string
	for _, d := range src.ManDirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.gz"))
		man = append(man, files...)
	}
	slices.Sort(man)
	for _, d := range src.GoDirs {
		dirs, err := goPackageDirs(d)
		if err != nil {
			return err
		}
		code = append(code, dirs...)
	}
	// Alternate: one manual page, then one Go package.
	for i := 0; i < max(len(man), len(code)); i++ {
		if i < len(man) {
			if d, ok := readManPage(man[i], fresh); ok && !emit(d) {
				return nil
			}
		}
		if i < len(code) {
			if d, ok := readGoPackage(code[i], fresh); ok && !emit(d) {
				return nil
			}
		}
	}
	return nil
}

// dbpediaJunk is what the abstracts carry of their RDF triples: language tags and IRIs.
var dbpediaJunk = regexp.MustCompile(`\s*@en\s*<[^>]*>\s*\.?|<https?://[^>]*>`)

func readDBpedia(path string, fresh func(string) bool, emit func(sourceDoc) bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec struct {
			ID    string `json:"_id"`
			Title string `json:"title"`
			Text  string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		text := strings.Join(strings.Fields(dbpediaJunk.ReplaceAllString(rec.Text, " ")), " ")
		if len(strings.Fields(text)) < 8 || !fresh(text) {
			continue
		}
		if !emit(sourceDoc{Kind: "dbpedia", Title: rec.Title, Source: rec.ID, Text: text, Lead: text}) {
			return false, nil
		}
	}
	return true, sc.Err()
}

// goPackageDirs lists the directories under root that hold non-test Go files, sorted, leaving out
// testdata, vendor and internal copies of the toolchain's own tests.
func goPackageDirs(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: skip
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "vendor", ".git", "cache":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dir := filepath.Dir(path)
			if len(out) == 0 || out[len(out)-1] != dir {
				out = append(out, dir)
			}
		}
		return nil
	})
	slices.Sort(out)
	return slices.Compact(out), err
}

// importPath names a package directory the way Go users write it: the path under src/ for the
// standard library, the module path without its @version under the module cache.
func importPath(dir string) string {
	dir = filepath.ToSlash(dir)
	if i := strings.Index(dir, "/pkg/mod/"); i >= 0 {
		p := dir[i+len("/pkg/mod/"):]
		// Module paths escape capitals as !x.
		var b strings.Builder
		up := false
		for _, r := range p {
			switch {
			case r == '!':
				up = true
				continue
			case up:
				r = unicode.ToUpper(r)
				up = false
			}
			b.WriteRune(r)
		}
		p = b.String()
		if j := strings.Index(p, "@"); j >= 0 {
			rest := p[j:]
			if k := strings.Index(rest, "/"); k >= 0 {
				return p[:j] + rest[k:]
			}
			return p[:j]
		}
		return p
	}
	if i := strings.LastIndex(dir, "/src/"); i >= 0 {
		return dir[i+len("/src/"):]
	}
	return filepath.Base(dir)
}

// readGoPackage reads the doc and other comments of one package directory as paragraphs of
// prose. A comment block becomes text when it reads like sentences: code in comments (indented
// lines), directives, licence headers and generated-code notices are left out.
func readGoPackage(dir string, fresh func(string) bool) (sourceDoc, bool) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	slices.Sort(files)
	var paras []string
	lead := ""
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, p := range commentParagraphs(string(data)) {
			if lead == "" && strings.HasPrefix(p, "Package ") {
				lead = firstSentence(p)
			}
			if fresh(p) {
				paras = append(paras, p)
			}
		}
	}
	if len(paras) == 0 {
		return sourceDoc{}, false
	}
	path := importPath(dir)
	return sourceDoc{Kind: "go", Title: "Go package " + path, Source: path, Text: strings.Join(paras, "\n\n"), Lead: lead}, true
}

// commentParagraphs returns the prose paragraphs of the // comments of a Go file.
func commentParagraphs(src string) []string {
	var out, cur []string
	flush := func() {
		if len(cur) > 0 {
			p := strings.Join(cur, " ")
			if proseLike(p) {
				out = append(out, p)
			}
			cur = cur[:0]
		}
	}
	for line := range strings.Lines(src) {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, "//") {
			flush()
			continue
		}
		body := strings.TrimPrefix(t, "//")
		switch {
		case strings.HasPrefix(body, "go:"), strings.HasPrefix(body, "+build"), strings.HasPrefix(body, "line "),
			strings.HasPrefix(body, "\t"), strings.HasPrefix(body, "  "):
			flush() // directives and code blocks
			continue
		}
		body = strings.TrimSpace(body)
		if body == "" {
			flush()
			continue
		}
		cur = append(cur, body)
	}
	flush()
	return out
}

// proseLike says whether a paragraph reads like English sentences: enough words, mostly letters,
// not a licence or generated-code notice.
func proseLike(p string) bool {
	words := strings.Fields(p)
	if len(words) < 8 {
		return false
	}
	for _, junk := range []string{"Copyright", "Code generated", "SPDX-License", "Licensed under", "DO NOT EDIT", "license that can be found"} {
		if strings.Contains(p, junk) {
			return false
		}
	}
	letters, other := 0, 0
	for _, r := range p {
		switch {
		case unicode.IsLetter(r):
			letters++
		case r == ' ' || r == ',' || r == '.' || r == '\'' || r == '-':
		default:
			other++
		}
	}
	plain := 0
	for _, w := range words {
		if strings.IndexFunc(w, func(r rune) bool { return r == '(' || r == '_' || r == '=' || r == '{' || r == '*' || r == '[' }) < 0 {
			plain++
		}
	}
	return letters > 8*other && plain*10 >= len(words)*8
}

// firstSentence returns p up to its first ". ".
func firstSentence(p string) string {
	if i := strings.Index(p, ". "); i >= 0 {
		return p[:i+1]
	}
	return p
}

// Roff, as manual pages are written: requests (lines starting with . or '), font and character
// escapes.
var (
	roffFont   = regexp.MustCompile(`\\f(\[[^\]]*\]|\(..|.)`)
	roffChar   = regexp.MustCompile(`\\\((..)|\\\[[^\]]*\]|\\\*(\(..|\[[^\]]*\]|.)|\\[&|^%:ce]|\\s[-+]?\d+`)
	paraBreaks = map[string]bool{".PP": true, ".LP": true, ".P": true, ".TP": true, ".IP": true, ".SH": true, ".SS": true, ".sp": true, ".br": false}
)

// readManPage reads a gzipped manual page as paragraphs of text; its title is "name(section)",
// its lead the NAME line's description.
func readManPage(path string, fresh func(string) bool) (sourceDoc, bool) {
	f, err := os.Open(path)
	if err != nil {
		return sourceDoc{}, false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return sourceDoc{}, false
	}
	data, err := io.ReadAll(io.LimitReader(zr, 4<<20))
	if err != nil {
		return sourceDoc{}, false
	}
	var paras, cur []string
	section, name := "", ""
	flush := func() {
		if len(cur) > 0 {
			p := strings.Join(strings.Fields(strings.Join(cur, " ")), " ")
			if section == "NAME" && name == "" {
				name = p
			} else if proseLike(p) && fresh(p) {
				paras = append(paras, p)
			}
			cur = cur[:0]
		}
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			req := strings.Fields(line)
			if len(req) == 0 {
				continue
			}
			if paraBreaks[req[0]] {
				flush()
			}
			if req[0] == ".SH" && len(req) > 1 {
				section = strings.Trim(strings.Join(req[1:], " "), `"`)
			}
			// Font requests carry text: .B word, .I word, .BR a b.
			switch req[0] {
			case ".B", ".I", ".BR", ".BI", ".IR", ".RB", ".RI", ".IB":
				cur = append(cur, strings.ReplaceAll(roffText(strings.Join(req[1:], " ")), `"`, ""))
			}
			continue
		}
		if t := roffText(line); strings.TrimSpace(t) != "" {
			cur = append(cur, t)
		} else {
			flush()
		}
	}
	flush()
	if len(paras) == 0 {
		return sourceDoc{}, false
	}
	base := strings.TrimSuffix(filepath.Base(path), ".gz")
	title := base
	if i := strings.LastIndex(base, "."); i > 0 {
		title = base[:i] + "(" + base[i+1:] + ")"
	}
	lead := ""
	if i := strings.Index(name, ` - `); i >= 0 {
		lead = strings.TrimSpace(name[i+3:])
	} else if i := strings.Index(name, `\- `); i >= 0 {
		lead = strings.TrimSpace(name[i+3:])
	}
	if lead != "" {
		title += ": " + lead
	}
	return sourceDoc{Kind: "man", Title: title, Source: path, Text: strings.Join(paras, "\n\n"), Lead: lead}, true
}

// roffText removes roff escapes from a line of text.
func roffText(s string) string {
	s = roffFont.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, `\-`, "-")
	s = strings.ReplaceAll(s, `\ `, " ")
	s = strings.ReplaceAll(s, `\e`, `\`)
	s = roffChar.ReplaceAllStringFunc(s, func(m string) string {
		switch m {
		case `\(em`, `\[em]`, `\(en`, `\[en]`:
			return "-"
		case `\(aq`, `\[aq]`, `\(cq`, `\(oq`:
			return "'"
		case `\(dq`, `\(lq`, `\(rq`:
			return `"`
		}
		return ""
	})
	return s
}
