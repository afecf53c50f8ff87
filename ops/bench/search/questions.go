package main

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strings"
)

// A question is one search of the benchmark.
type question struct {
	Kind string // "dbpedia-query", "dbpedia-title", "go-package", "man-page"
	Text string
}

// readQueries reads the queries of a BEIR queries.jsonl.
func readQueries(path string) ([]question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []question
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, err
		}
		if t := strings.Join(strings.Fields(rec.Text), " "); t != "" {
			out = append(out, question{Kind: "dbpedia-query", Text: t})
		}
	}
	return out, sc.Err()
}

// questionMaker turns documents of the corpus into questions as users type them. Every document
// that gives a question is a candidate; questions() then takes candidates evenly spaced over each
// kind's list, so they spread over the corpus. It is deterministic: the same corpus gives the same
// questions.
//
//   - DBpedia abstracts, by the abstract's first sentence: "who founded X?" when it says X was
//     founded or established, "where was X born?" for people (born), "where is X located?" for
//     places (is a city, town, river, ...), otherwise "what is X known for?" (X is the article's
//     title without a parenthesised qualifier, at most five words).
//   - Go packages whose doc starts "Package x implements/provides/... <rest>." (rest of at most 14
//     words, no code): "which go package implements <rest>?" and "how does the x package work in
//     go?", alternately.
//   - Manual pages whose NAME description starts with a common verb ("ls - list directory
//     contents"): "how do I list directory contents?" and "which command can I use to list
//     directory contents?", alternately.
type questionMaker struct {
	out map[string][]question
}

func newQuestionMaker() *questionMaker {
	return &questionMaker{out: map[string][]question{}}
}

var (
	parenthesised = regexp.MustCompile(`\s*\([^)]*\)`)
	packageLead   = regexp.MustCompile(`^Package (\w+) (implements|provides|contains|defines|supports|offers|manages|handles|parses|generates) (.+?)\.?$`)
	placeWords    = regexp.MustCompile(`\b(is a (city|town|village|county|river|lake|mountain|region|municipality|district|commune|suburb|island|state)|is located)\b`)
	manVerbs      = map[string]bool{}
)

func init() {
	for _, v := range strings.Fields(`list change create print display show convert compress copy remove delete manage set get
		check run execute send read write find search edit format make build install update query dump extract generate report
		monitor control configure mount split join sort compare transfer translate encode decode verify sign encrypt decrypt
		start stop kill determine output locate scan test modify add rename move load unload open close view merge pack unpack
		archive restore clean reset resize validate parse calculate count download upload connect allocate free map lock unlock
		wait log notify schedule tune measure trace debug register enable disable attach detach compile link`) {
		manVerbs[v] = true
	}
}

// add offers a document.
func (m *questionMaker) add(d sourceDoc) {
	switch d.Kind {
	case "dbpedia":
		t := strings.TrimSpace(parenthesised.ReplaceAllString(d.Title, ""))
		if t == "" || len(strings.Fields(t)) > 5 {
			return
		}
		lead := strings.ToLower(firstSentence(d.Lead))
		var q string
		switch {
		case strings.Contains(lead, " founded ") || strings.Contains(lead, " established "):
			q = "who founded " + t + "?"
		case strings.Contains(lead, "(born ") || strings.Contains(lead, " born "):
			q = "where was " + t + " born?"
		case placeWords.MatchString(lead):
			q = "where is " + t + " located?"
		default:
			q = "what is " + t + " known for?"
		}
		m.out["dbpedia-title"] = append(m.out["dbpedia-title"], question{Kind: "dbpedia-title", Text: q})
	case "go":
		sm := packageLead.FindStringSubmatch(d.Lead)
		if sm == nil || strings.ContainsAny(sm[3], "`[]()*{}") || len(strings.Fields(sm[3])) > 14 {
			return
		}
		q := "which go package " + sm[2] + " " + sm[3] + "?"
		if len(m.out["go-package"])%2 == 1 {
			q = "how does the " + sm[1] + " package work in go?"
		}
		m.out["go-package"] = append(m.out["go-package"], question{Kind: "go-package", Text: q})
	case "man":
		desc := strings.TrimRight(d.Lead, ". ")
		words := strings.Fields(desc)
		if len(words) < 2 || len(words) > 10 || !manVerbs[words[0]] || strings.ContainsAny(desc, "()[]<>/\\\"") {
			return
		}
		q := "how do I " + desc + "?"
		if len(m.out["man-page"])%2 == 1 {
			q = "which command can I use to " + desc + "?"
		}
		m.out["man-page"] = append(m.out["man-page"], question{Kind: "man-page", Text: q})
	}
}

// questions returns the given queries followed by generated ones, n in all, the generated kinds
// (DBpedia titles, Go packages, manual pages) in equal parts as far as they have candidates, each
// part spread evenly over its kind's candidates.
func (m *questionMaker) questions(given []question, n int) []question {
	out := append([]question(nil), given[:min(len(given), n)]...)
	kinds := []string{"dbpedia-title", "go-package", "man-page"}
	want := map[string]int{}
	for left := n - len(out); left > 0; {
		added := false
		for _, k := range kinds {
			if left > 0 && want[k] < len(m.out[k]) {
				want[k]++
				left--
				added = true
			}
		}
		if !added {
			break
		}
	}
	for _, k := range kinds {
		c := m.out[k]
		for i := range want[k] {
			out = append(out, c[i*len(c)/want[k]])
		}
	}
	return out
}
