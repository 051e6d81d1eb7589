package serverless

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

func importFile(t *testing.T, name string) *Imported {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Import(name, data, keyEnv(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestServerlessCORS: an http event's cors (true and the object form)
// becomes its route's cors, provider.httpApi.cors the top-level one, and
// drawbridge import writes them.
func TestServerlessCORS(t *testing.T) {
	im := importFile(t, "cors-rest.yml")
	c := im.Config
	if c.CORS != nil || len(c.Routes) != 2 {
		t.Fatalf("top cors %+v, routes %+v", c.CORS, c.Routes)
	}
	want := []config.CORS{
		{AllowOrigins: []string{"*"}, AllowHeaders: slsCORSHeaders},
		{AllowOrigins: []string{"https://shop.example.com", "https://admin.example.com", "https://*.shop.example.com"},
			AllowHeaders: []string{"Content-Type", "X-Api-Key"}, AllowCredentials: true, MaxAge: 600},
	}
	for i, r := range c.Routes {
		if r.CORS == nil || !reflect.DeepEqual(*r.CORS, want[i]) {
			t.Errorf("route %s cors = %+v, want %+v", r.Path, r.CORS, want[i])
		}
	}
	if got := strings.Join(c.Routes[0].Methods, ","); got != "GET,POST" {
		t.Errorf("events with the same cors are one route: methods %s", got)
	}
	if o := im.Origins["$.routes[1].cors"]; o.Key != "functions.orders.events[0].cors" || o.Line != 31 {
		t.Errorf("origin of routes[1].cors = %+v", o)
	}
	if !hasWarning(c, "cacheControl: ignored") {
		t.Errorf("no warning for cacheControl: %v", c.Warnings)
	}
	native := string(im.Native("cors-rest.yml"))
	for _, s := range []string{
		`cors: {allow_origins: ["*"], allow_headers: ["Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token", "X-Amz-User-Agent", "X-Amzn-Trace-Id"]}  # functions.items.events[0].cors (cors-rest.yml:18)`,
		`allow_credentials: true}  # functions.orders.events[0].cors (cors-rest.yml:31)`,
	} {
		if !strings.Contains(native, s) {
			t.Errorf("native lacks %q:\n%s", s, native)
		}
	}

	im = importFile(t, "cors-httpapi.yml")
	c = im.Config
	top := config.CORS{AllowOrigins: []string{"https://feed.example.com"}, AllowHeaders: []string{"Content-Type", "Authorization"},
		AllowMethods: []string{"GET", "POST"}, ExposeHeaders: []string{"x-amzn-RequestId"}, AllowCredentials: true, MaxAge: 300}
	if c.CORS == nil || !reflect.DeepEqual(*c.CORS, top) || c.Routes[0].CORS != nil || c.RouteCORS(&c.Routes[0]) != c.CORS {
		t.Errorf("top cors = %+v, want %+v", c.CORS, top)
	}
	if !hasWarning(c, "provider.httpApi.name: ignored") {
		t.Errorf("no warning for httpApi.name: %v", c.Warnings)
	}
	if native := string(im.Native("cors-httpapi.yml")); !strings.Contains(native, "\ncors: {allow_origins: [\"https://feed.example.com\"]") {
		t.Errorf("native lacks the top-level cors:\n%s", native)
	}
}

func hasWarning(c *config.Config, s string) bool {
	for _, w := range c.Warnings {
		if strings.Contains(w.Msg, s) {
			return true
		}
	}
	return false
}

func TestServerlessCORSErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"credentials with any origin", slsHead + slsFn("      - http:\n          path: a\n          method: get\n          cors: {allowCredentials: true}\n"),
			`s.yml:12: routes[0].cors: allow_credentials: true with the origin "*"`},
		{"unknown cors key", slsHead + slsFn("      - http:\n          path: a\n          method: get\n          cors: {origns: ['*']}\n"),
			`s.yml:12: functions.proxy.events[0].http.cors: unknown key "origns"`},
		{"httpApi cors on a REST service", slsHead + "  httpApi: {cors: true}\n" + slsFn("      - http: GET a\n"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			im, err := Import("s.yml", []byte(c.src), nil, Options{})
			if c.want == "" {
				if err != nil || im.Config.CORS != nil || !hasWarning(im.Config, "provider.httpApi.cors: ignored: it applies to httpApi events") {
					t.Errorf("err %v, cors %+v, warnings %v", err, im.Config.CORS, im.Config.Warnings)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}
