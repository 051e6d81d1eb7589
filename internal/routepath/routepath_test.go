package routepath

import "testing"

// TestCheck holds the grammar: what the config loader refuses and why.
func TestCheck(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"/hooks/github", ""},
		{"/hooks/*", ""},
		{"/", ""},
		{"/items/{id}", ""},
		{"/repos/{owner}/hooks/{rest+}", ""},
		{"hooks", "must start with /"},
		{"/a*b", "may only end in /* and must not contain * ? # % \\ or spaces"},
		{"/a//b", "empty segment"},
		{"/a/../b", "dot segment"},
		{"/items/id-{id}", `segment "id-{id}": a parameter is a whole segment {name} (letters, digits, _ . -) or, last, {name+}`},
		{"/files/{p+}/x", "{p+} must be the last segment"},
		{"/items/{id}/*", "a path with {parameters} cannot end in /*; end it in {name+} instead"},
		{"/a/{x}/b/{x}", "parameter {x} appears twice"},
	} {
		if got := Check(c.path); got != c.want {
			t.Errorf("Check(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

// TestShape: parameter names do not make two routes different.
func TestShape(t *testing.T) {
	if a, b := Shape("/items/{id}/x/{rest+}"), Shape("/items/{name}/x/{all+}"); a != b || a != "/items/{}/x/{+}" {
		t.Errorf("Shape = %q and %q, want both /items/{}/x/{+}", a, b)
	}
	if got := Shape("/plain/path"); got != "/plain/path" {
		t.Errorf("Shape(plain) = %q", got)
	}
}
