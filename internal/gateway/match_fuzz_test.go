package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// FuzzJSONLookup holds the skipping scanner to encoding/json: on any
// valid JSON document, the text jsonPathKey finds at a path is what a full
// decode finds there (a string's text, any other scalar's JSON), and it
// never panics.
func FuzzJSONLookup(f *testing.F) {
	f.Add(`{"ref":"refs/heads/main","a":{"b":[1,{"c":"x\u0079"}]}}`, "a.b.1.c")
	f.Add(` { "k\"q" : [ true , null , -1.5e3 ] } `, `k"q.2`)
	f.Add(`[{"a":1},{"a":2}]`, "1.a")
	f.Add(`{"a":{"a":{"a":"deep"}},"b":"{\"a\":1}"}`, "a.a.a")
	f.Add(`"just a string"`, "a")
	f.Fuzz(func(t *testing.T, doc, path string) {
		if !json.Valid([]byte(doc)) || !validPath(path) {
			return
		}
		got := jsonPathKey([]byte(doc), path)
		var v any
		json.Unmarshal([]byte(doc), &v)
		want := ""
		for _, seg := range strings.Split(path, ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[seg] // a duplicate name: the last wins here, the first in the scanner
				if _, ok := x[seg]; !ok {
					v = missing{}
				}
			case []any:
				n, err := strconv.Atoi(seg)
				if err != nil || n < 0 || n >= len(x) || seg != strconv.Itoa(n) {
					v = missing{}
				} else {
					v = x[n]
				}
			default:
				v = missing{}
			}
		}
		switch x := v.(type) {
		case missing:
		case string:
			want = x
		case map[string]any, []any:
			return // the raw JSON of a container: spacing differs
		default:
			b, _ := json.Marshal(x)
			want = string(b)
			if _, ok := x.(float64); ok {
				return // numbers keep their spelling in the scanner
			}
		}
		if got != want && !hasDuplicateNames(doc) {
			t.Errorf("%s at %q: scanner %q, encoding/json %q", doc, path, got, want)
		}
	})
}

type missing struct{}

func validPath(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, s := range strings.Split(p, ".") {
		if s == "" {
			return false
		}
	}
	return true
}

// hasDuplicateNames is a conservative guess: documents where a name may
// appear twice in one object are skipped (which one wins differs).
func hasDuplicateNames(doc string) bool {
	seen := map[string]int{}
	dec := json.NewDecoder(strings.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			seen[s]++
		}
	}
	for _, n := range seen {
		if n > 1 {
			return true
		}
	}
	return false
}
