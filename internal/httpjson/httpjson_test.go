package httpjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

type inner struct {
	TopK  int `json:"top_k"`
	Limit struct {
		Max int `json:"max"`
	} `json:"limit"`
}

type Named struct {
	ID int `json:"id"`
}

type outer struct {
	inner
	*Named
	Items []struct {
		Size int `json:"size"`
	} `json:"items"`
}

// A type error names the field as the client sent it, whatever structs the request type embeds.
func TestSentPath(t *testing.T) {
	for body, want := range map[string]string{
		`{"top_k": "x"}`:            "top_k",
		`{"limit": {"max": "x"}}`:   "limit.max",
		`{"id": "x"}`:               "id",
		`{"items": [{"size": ""}]}`: "items.size",
	} {
		var dst outer
		err := json.Unmarshal([]byte(body), &dst)
		typ, ok := err.(*json.UnmarshalTypeError)
		if !ok {
			t.Fatalf("%s: %v, want a type error", body, err)
		}
		if got := sentPath(reflect.TypeOf(&dst), typ.Field); got != want {
			t.Errorf("%s: field %q (encoding/json says %q), want %q", body, got, typ.Field, want)
		}
	}
}
