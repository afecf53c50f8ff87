package neo4j

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cypherStatements is every Cypher statement of the package. TestEveryCypherConstantIsListed keeps
// it complete.
var cypherStatements = []struct{ name, query string }{
	{"cypherEntityConstraint", cypherEntityConstraint},
	{"cypherEntityGroupIndex", cypherEntityGroupIndex},
	{"cypherRelationDocumentIndex", cypherRelationDocumentIndex},
	{"cypherUpsertEntities", cypherUpsertEntities},
	{"cypherAddRelation", cypherAddRelation},
	{"cypherRetireBySource", cypherRetireBySource},
	{"cypherRetireByTarget", cypherRetireByTarget},
	{"cypherDeleteDocument", cypherDeleteDocument},
	{"cypherDeleteGroupBatch", cypherDeleteGroupBatch},
	{"cypherSearchEntities", cypherSearchEntities},
	{"cypherEntityExists", cypherEntityExists},
	{"cypherEntityRelations", cypherEntityRelations},
	{"cypherEntityTimeline", cypherEntityTimeline},
	{"cypherFactsForEntities", cypherFactsForEntities},
	{"cypherEntitiesInText", cypherEntitiesInText},
}

func TestCypherIsScopedToTheTenant(t *testing.T) {
	for _, c := range cypherStatements {
		t.Run(c.name, func(t *testing.T) {
			for _, problem := range checkCypher(c.query) {
				t.Error(problem)
			}
		})
	}
}

// The checker itself must catch what it is for.
func TestCypherCheckerCatchesLeaks(t *testing.T) {
	tests := []struct {
		name  string
		given string
	}{
		{name: "node without group", given: `MATCH (e:Entity {norm_name: $name}) RETURN e`},
		{name: "group from a literal", given: `MATCH (e:Entity {group_id: 'acme'}) RETURN e`},
		{name: "group in WHERE only", given: `MATCH (e:Entity) WHERE e.group_id = $group_id RETURN e`},
		{name: "edge without group", given: `MATCH (e:Entity {group_id: $group_id})-[r:RELATES_TO]->(o:Entity {group_id: $group_id}) RETURN r`},
		{name: "anonymous edge", given: `MATCH (e:Entity {group_id: $group_id})--(o:Entity {group_id: $group_id}) RETURN o`},
		{name: "untyped edge", given: `MATCH (e:Entity {group_id: $group_id})-[r {group_id: $group_id}]->(o:Entity {group_id: $group_id}) RETURN o`},
		{name: "unbound node", given: `MATCH (e:Entity {group_id: $group_id}) MATCH (x)-[r:RELATES_TO {group_id: $group_id}]->(e) RETURN x`},
		{name: "anonymous node", given: `MATCH (e:Entity {group_id: $group_id})-[r:RELATES_TO {group_id: $group_id}]->() RETURN r`},
		{name: "merge without group", given: `MERGE (e:Entity {norm_name: $n}) SET e.group_id = $group_id`},
		{name: "create without group", given: `MATCH (s:Entity {group_id: $group_id}) CREATE (s)-[r:RELATES_TO {name: $n}]->(s)`},
		{name: "fmt verb", given: `MATCH (e:Entity {group_id: $group_id}) WHERE e.name = '%s' RETURN e`},
		{name: "concatenation", given: `MATCH (e:Entity {group_id: $group_id}) WHERE e.name = 'x' + $n RETURN e`},
		{name: "template", given: `MATCH (e:{{.Label}} {group_id: $group_id}) RETURN e`},
		{name: "string literal", given: `MATCH (e:Entity {group_id: $group_id}) WHERE e.name = 'Acme' RETURN e`},
		{name: "schema without group", given: `CREATE INDEX x IF NOT EXISTS FOR (e:Entity) ON (e.norm_name)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(checkCypher(tt.given)) == 0 {
				t.Fatalf("no problem found in %q", tt.given)
			}
		})
	}
}

var (
	clauseKeyword = regexp.MustCompile(`\b(OPTIONAL MATCH|MATCH|MERGE|ON CREATE SET|ON MATCH SET|CREATE|WHERE|WITH|UNWIND|RETURN|ORDER BY|LIMIT|SET|DETACH DELETE|DELETE|CALL)\b`)
	nodePattern   = regexp.MustCompile(`\(\s*([A-Za-z_]\w*)?\s*(?::\s*([A-Za-z_]\w*))?\s*(\{[^{}]*\})?\s*\)`)
	relPattern    = regexp.MustCompile(`\[\s*([A-Za-z_]\w*)?\s*(?::\s*([A-Za-z_]\w*))?\s*(\{[^{}]*\})?\s*\]`)
	groupProperty = regexp.MustCompile(`\bgroup_id:\s*\$group_id\b`)
	fmtVerb       = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)
	stringLiteral = regexp.MustCompile(`'[^']+'|"[^"]*"`)
	unwindBound   = regexp.MustCompile(`^\[\s*([\w\s,]+)\]\s+AS\s+(\w+)`)
)

// checkCypher returns what is wrong with a statement: every node and edge pattern of a MATCH,
// MERGE or CREATE must carry group_id: $group_id (or be a variable bound by one that does), edges
// must be typed, and the text must show no sign of being built from input.
func checkCypher(q string) []string {
	var problems []string
	switch {
	case strings.Contains(q, "%") && fmtVerb.MatchString(q):
		problems = append(problems, "contains a fmt verb")
	case strings.Contains(q, "+"):
		problems = append(problems, "contains '+' (string concatenation)")
	case strings.Contains(q, "{{") || strings.Contains(q, "}}"):
		problems = append(problems, "contains template markers")
	case stringLiteral.MatchString(q):
		problems = append(problems, "contains a string literal; values must be parameters")
	}
	if strings.HasPrefix(q, "CREATE CONSTRAINT") || strings.HasPrefix(q, "CREATE INDEX") {
		if !regexp.MustCompile(`(REQUIRE|ON) \([^)]*\bgroup_id\b`).MatchString(q) {
			problems = append(problems, "schema statement not keyed by group_id")
		}
		return problems
	}
	if !strings.Contains(q, "$group_id") {
		problems = append(problems, "never mentions $group_id")
	}
	bound := map[string]bool{}
	locs := clauseKeyword.FindAllStringIndex(q, -1)
	for i, loc := range locs {
		keyword := q[loc[0]:loc[1]]
		end := len(q)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		body := q[loc[1]:end]
		switch keyword {
		case "UNWIND":
			if m := unwindBound.FindStringSubmatch(strings.TrimSpace(body)); m != nil {
				all := true
				for _, v := range strings.Split(m[1], ",") {
					all = all && bound[strings.TrimSpace(v)]
				}
				bound[m[2]] = all
			}
			continue
		case "MATCH", "OPTIONAL MATCH", "MERGE", "CREATE":
		default:
			continue
		}
		if strings.Contains(body, "--") || strings.Contains(body, "<-(") || regexp.MustCompile(`\)-\(|\)->\(|\)<-\(`).MatchString(body) {
			problems = append(problems, keyword+": relationship pattern without brackets: "+strings.TrimSpace(body))
		}
		for _, m := range relPattern.FindAllStringSubmatch(body, -1) {
			if m[2] == "" || !groupProperty.MatchString(m[3]) {
				problems = append(problems, keyword+": relationship "+m[0]+" without a type and group_id: $group_id")
			}
		}
		for _, m := range nodePattern.FindAllStringSubmatch(body, -1) {
			variable, label, props := m[1], m[2], m[3]
			switch {
			case label == "" && props == "" && variable != "" && bound[variable]:
				// a node bound earlier by a group-scoped pattern
			case label != "" && groupProperty.MatchString(props):
				if variable != "" {
					bound[variable] = true
				}
			default:
				problems = append(problems, keyword+": node "+m[0]+" is not scoped by group_id: $group_id")
			}
		}
	}
	return problems
}

// Every Cypher statement is a package constant written as one literal and listed above, and every
// query passed to the driver is one of them (or a parameter forwarding one).
func TestEveryCypherConstantIsListed(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range cypherStatements {
		listed[c.name] = true
	}
	consts := map[string]bool{}
	queryParams := map[string]int{} // function name -> index of its "query" parameter
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for i, n := range vs.Names {
						if !strings.HasPrefix(n.Name, "cypher") {
							continue
						}
						if d.Tok != token.CONST {
							t.Errorf("%s is a %s, not a constant", n.Name, d.Tok)
						}
						consts[n.Name] = true
						if !listed[n.Name] {
							t.Errorf("%s is not in cypherStatements", n.Name)
						}
						if i >= len(vs.Values) {
							continue
						}
						if _, ok := vs.Values[i].(*ast.BasicLit); !ok {
							t.Errorf("%s is not a single string literal", n.Name)
						}
					}
				}
			case *ast.FuncDecl:
				idx := 0
				for _, field := range d.Type.Params.List {
					for _, n := range field.Names {
						if n.Name == "query" {
							queryParams[d.Name.Name] = idx
						}
						idx++
					}
				}
			}
		}
	}
	for name := range listed {
		if !consts[name] {
			t.Errorf("cypherStatements lists %s, which is not a package constant", name)
		}
	}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING && regexp.MustCompile(`\b(MATCH|MERGE|CREATE|RETURN)\b`).MatchString(n.Value) && !isCypherConstValue(f, n) {
					t.Errorf("%s: Cypher-like literal outside a cypher constant", fset.Position(n.Pos()))
				}
			case *ast.CallExpr:
				name, idx := "", -1
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				case *ast.Ident:
					name = fn.Name
				}
				if i, ok := queryParams[name]; ok {
					idx = i
				} else if name == "Run" {
					idx = 1
				}
				if idx < 0 || idx >= len(n.Args) {
					return true
				}
				if !queryArgOK(n.Args[idx], consts) {
					t.Errorf("%s: %s is not given a cypher constant", fset.Position(n.Pos()), name)
				}
			}
			return true
		})
	}
}

// isCypherConstValue reports whether lit is the value of a cypher constant.
func isCypherConstValue(f *ast.File, lit *ast.BasicLit) bool {
	found := false
	for _, decl := range f.Decls {
		d, ok := decl.(*ast.GenDecl)
		if !ok || d.Tok != token.CONST {
			continue
		}
		for _, spec := range d.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, v := range vs.Values {
				if v == lit && strings.HasPrefix(vs.Names[i].Name, "cypher") {
					found = true
				}
			}
		}
	}
	return found
}

// queryArgOK accepts a cypher constant, a "query" parameter (whose callers are checked in turn),
// and a range variable over a literal list of cypher constants.
func queryArgOK(arg ast.Expr, consts map[string]bool) bool {
	id, ok := arg.(*ast.Ident)
	if !ok {
		return false
	}
	if consts[id.Name] {
		return true
	}
	if id.Obj == nil {
		return false
	}
	switch decl := id.Obj.Decl.(type) {
	case *ast.Field:
		return slices.ContainsFunc(decl.Names, func(n *ast.Ident) bool { return n.Name == "query" })
	case *ast.AssignStmt:
		// for _, q := range []string{cypherA, cypherB}
		return len(decl.Rhs) == 1 && rangeOverConsts(decl.Rhs[0], consts)
	}
	return false
}

func rangeOverConsts(e ast.Expr, consts map[string]bool) bool {
	u, ok := e.(*ast.UnaryExpr)
	if !ok || u.Op != token.RANGE {
		return false
	}
	lit, ok := u.X.(*ast.CompositeLit)
	if !ok {
		return false
	}
	for _, el := range lit.Elts {
		if id, ok := el.(*ast.Ident); !ok || !consts[id.Name] {
			return false
		}
	}
	return true
}
