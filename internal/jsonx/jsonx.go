// Package jsonx holds the strict JSON checks the HTTP APIs share.
//
// encoding/json matches object keys to struct fields case-insensitively:
// {"Display_Name": "x"} fills DisplayName, and {"email": "a", "EMAIL": "b"}
// keeps the last one. An API that documents lower-case field names and
// checks which fields a body sent must see the keys as written; ExactKeys
// does that for a body already decoded into its struct.
package jsonx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Fields returns the JSON names of struct type t's exported fields (tag
// name, or the Go name when the tag has none; "-" fields left out).
func Fields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// KeyError is a key of the object that is not one of the fields as
// written; Want is the field it matches case-insensitively, if any.
type KeyError struct {
	Key, Want string
}

func (e *KeyError) Error() string {
	k := e.Key
	if len(k) > 66 {
		k = strings.ToValidUTF8(k[:64], "") + "…"
	}
	if e.Want != "" {
		return fmt.Sprintf("unknown field %q (field names are written as documented: %q)", k, e.Want)
	}
	return fmt.Sprintf("unknown field %q", k)
}

// ExactKeys checks that every key of the JSON object raw is one of the
// JSON field names of v's struct type, in its exact case, and returns the
// keys present (null-valued ones too). raw must already have decoded into
// v without error; a raw that is not an object returns an empty set.
func ExactKeys(raw []byte, v any) (map[string]bool, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(raw), &keys); err != nil {
		return map[string]bool{}, nil
	}
	want := Fields(reflect.TypeOf(v))
	sent := make(map[string]bool, len(keys))
	for k := range keys {
		if !want[k] {
			e := &KeyError{Key: k}
			for f := range want {
				if strings.EqualFold(f, k) {
					e.Want = f
				}
			}
			return nil, e
		}
		sent[k] = true
	}
	return sent, nil
}
