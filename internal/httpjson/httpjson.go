// Package httpjson reads request bodies the same way in every service: strictly decoded JSON, with
// problems reported as ragplane errors naming the field.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
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
		return jsonError(err)
	}
	if dec.More() {
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body has data after the JSON object.")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return ragplane.Errorf(ragplane.EMALFORMED, "The request body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
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
