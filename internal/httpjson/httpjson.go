// Package httpjson reads request bodies the same way in every service: strictly decoded JSON, with
// problems reported as ragplane errors naming the field.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
)

// ReadBody returns the request body (already capped by the body-limit middleware).
func ReadBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, ragplane.Errorf(ragplane.EMALFORMED, "The request body could not be read.")
	}
	return b, nil
}

// Decode decodes body into dst strictly: JSON content type, no unknown fields, one value.
// Syntax problems are EMALFORMED (400); a value of the wrong type is EINVALID (422) naming the field.
func Decode(c echo.Context, body []byte, dst any) error {
	if ct := c.Request().Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return ragplane.Errorf(ragplane.EMALFORMED, "Content-Type must be application/json.")
		}
	}
	if !utf8.Valid(body) {
		// encoding/json would quietly replace the bad bytes; refuse them instead.
		return ragplane.Errorf(ragplane.EINVALID, "The request body is not valid UTF-8.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body is empty; a JSON object is expected.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, reflect.TypeOf(dst))
	}
	if dec.More() {
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body has data after the JSON object.")
	}
	return nil
}

func jsonError(err error, dst reflect.Type) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		field := sentPath(dst, typ.Field)
		if field == "" {
			return ragplane.Errorf(ragplane.EMALFORMED, "The request body must be a JSON object.")
		}
		return ragplane.FieldErrorf(field, "%s must be %s, not %s.", field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &ragplane.Error{Code: ragplane.EMALFORMED, Field: name, Message: "Unknown field \"" + name + "\"."}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body is truncated JSON.")
	}
	return ragplane.Errorf(ragplane.EMALFORMED, "The request body is not valid JSON.")
}

// sentPath is the path of a field as the client sent it: encoding/json names a field of an
// embedded struct with the embedded field's Go name in front ("searchRequest.top_k" for a
// request type that embeds searchRequest), a segment no client ever sent, so it is dropped.
func sentPath(t reflect.Type, path string) string {
	var out []string
	for _, seg := range strings.Split(path, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out, t = append(out, seg), nil
			continue
		}
		if f, ok := t.FieldByName(seg); ok && f.Anonymous && f.Tag.Get("json") == "" {
			t = f.Type // the embedded struct: its fields are the parent's in JSON
			continue
		}
		out = append(out, seg)
		next := reflect.Type(nil)
		for i := range t.NumField() {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == seg {
				next = t.Field(i).Type
				break
			}
		}
		t = next
	}
	return strings.Join(out, ".")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	case "ptr":
		return "a value of another type"
	}
	return "a number"
}
