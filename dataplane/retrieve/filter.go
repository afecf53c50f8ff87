package retrieve

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ragplane/ragplane"
)

// Filter bounds.
const (
	// MaxFilters is how many filters one search may have.
	MaxFilters = 20
	// MaxInValues is how many values an "in" filter may list.
	MaxInValues = 100
	// maxFilterJSON bounds the JSON a single filter sends to the database.
	maxFilterJSON = 8192
)

// fieldPattern is what a filter's Field may look like: a top-level metadata key. A dot is part
// of the key, not a path.
var fieldPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// ValidateFilters checks filters before they are compiled to SQL. There may be at most
// MaxFilters; each needs an Op of ragplane.FilterOps, a Field matching
// ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$ and a Value of the op's type:
//
//   - "eq": a string, number or boolean. It matches when the metadata value is that JSON value
//     (jsonb containment: the number 2 equals 2.0 but not the string "2").
//   - "in": a non-empty array of at most MaxInValues such values; it matches any of them.
//   - "contains": an object or array, matching when the metadata value contains it (jsonb @>):
//     {"tags": ["a"]} matches {"tags": ["a", "b"]}.
//   - "exists": true; it matches when the key is present, whatever its value.
//
// Filters combine with AND. Errors are EINVALID naming "filters", "filters[i].field",
// "filters[i].op" or "filters[i].value".
func ValidateFilters(filters []ragplane.Filter) error {
	if len(filters) > MaxFilters {
		return ragplane.FieldErrorf("filters", "At most %d filters are allowed.", MaxFilters)
	}
	for i, f := range filters {
		if _, err := compileFilter(i, f); err != nil {
			return err
		}
	}
	return nil
}

// compiledFilter is a validated filter as SQL over documents d, with $%d where its one
// parameter goes, and that parameter.
type compiledFilter struct {
	sql string
	arg any
}

// compileFilter validates filter i and compiles it. Values become JSON documents sent as a
// parameter; the field is inside that JSON, or itself a parameter for "exists".
func compileFilter(i int, f ragplane.Filter) (compiledFilter, error) {
	at := func(part string) string { return fmt.Sprintf("filters[%d].%s", i, part) }
	if !slices.Contains(ragplane.FilterOps, f.Op) {
		return compiledFilter{}, ragplane.FieldErrorf(at("op"), "The operator must be one of %s.", strings.Join(ragplane.FilterOps, ", "))
	}
	if !fieldPattern.MatchString(f.Field) {
		return compiledFilter{}, ragplane.FieldErrorf(at("field"),
			"The field must be a metadata key of letters, digits, '_', '.' or '-', starting with a letter or '_', at most 64 long.")
	}
	switch f.Op {
	case "eq":
		if !isScalar(f.Value) {
			return compiledFilter{}, ragplane.FieldErrorf(at("value"), "An eq filter needs a string, number or boolean.")
		}
		doc, err := filterJSON(at("value"), map[string]any{f.Field: f.Value})
		return compiledFilter{sql: "d.metadata @> $%d::jsonb", arg: doc}, err
	case "in":
		v := reflect.ValueOf(f.Value)
		if f.Value == nil || (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || v.Len() == 0 {
			return compiledFilter{}, ragplane.FieldErrorf(at("value"), "An in filter needs a non-empty array.")
		}
		if v.Len() > MaxInValues {
			return compiledFilter{}, ragplane.FieldErrorf(at("value"), "An in filter may list at most %d values.", MaxInValues)
		}
		docs := make([]string, v.Len())
		for j := range docs {
			e := v.Index(j).Interface()
			if !isScalar(e) {
				return compiledFilter{}, ragplane.FieldErrorf(fmt.Sprintf("filters[%d].value[%d]", i, j),
					"An in filter's values must be strings, numbers or booleans.")
			}
			var err error
			if docs[j], err = filterJSON(at("value"), map[string]any{f.Field: e}); err != nil {
				return compiledFilter{}, err
			}
		}
		// Any of the one-key documents is contained in the metadata.
		return compiledFilter{sql: "d.metadata @> any($%d::jsonb[])", arg: docs}, nil
	case "contains":
		if !isComposite(f.Value) {
			return compiledFilter{}, ragplane.FieldErrorf(at("value"), "A contains filter needs an object or an array.")
		}
		doc, err := filterJSON(at("value"), map[string]any{f.Field: f.Value})
		return compiledFilter{sql: "d.metadata @> $%d::jsonb", arg: doc}, err
	default: // "exists"
		if b, ok := f.Value.(bool); !ok || !b {
			return compiledFilter{}, ragplane.FieldErrorf(at("value"), "An exists filter's value must be true.")
		}
		return compiledFilter{sql: "d.metadata ? $%d", arg: f.Field}, nil
	}
}

// filterJSON encodes a filter's JSON document, bounded in size.
func filterJSON(field string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", ragplane.FieldErrorf(field, "The value cannot be encoded as JSON.")
	}
	if len(b) > maxFilterJSON {
		return "", ragplane.FieldErrorf(field, "The value is larger than %d bytes as JSON.", maxFilterJSON)
	}
	return string(b), nil
}

// isScalar reports whether v is a JSON string, finite number or boolean.
func isScalar(v any) bool {
	switch x := v.(type) {
	case string, bool:
		return true
	case json.Number:
		_, err := strconv.ParseFloat(string(x), 64)
		return err == nil
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

// isComposite reports whether v encodes as a JSON object or array: a map with string keys or a
// slice other than []byte (which encoding/json turns into a base64 string).
func isComposite(v any) bool {
	if v == nil {
		return false
	}
	t := reflect.TypeOf(v)
	switch t.Kind() {
	case reflect.Map:
		return t.Key().Kind() == reflect.String
	case reflect.Slice:
		return t.Elem().Kind() != reflect.Uint8 && !reflect.ValueOf(v).IsNil()
	case reflect.Array:
		return t.Elem().Kind() != reflect.Uint8
	}
	return false
}

// query accumulates SQL text and its bind parameters.
type query struct {
	sql  strings.Builder
	args []any
}

// arg adds a parameter and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// where appends " and <filter>" for each filter, to a condition where documents are d.
func (q *query) where(filters []ragplane.Filter) error {
	for i, f := range filters {
		c, err := compileFilter(i, f)
		if err != nil {
			return err
		}
		q.args = append(q.args, c.arg)
		fmt.Fprintf(&q.sql, " and "+c.sql, len(q.args))
	}
	return nil
}

// onlyConfigs appends a condition that chunks c are in one of the text-search configurations.
func (q *query) onlyConfigs(configs []string) {
	if len(configs) > 0 {
		q.sql.WriteString(" and c.text_config::text = any(" + q.arg(configs) + "::text[])")
	}
}
