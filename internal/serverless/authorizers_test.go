package serverless

import (
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
)

// TestServerlessAuthorizers: an HTTP API JWT authorizer maps as it is, a
// Lambda authorizer becomes a request authorizer at the URL
// custom.drawbridge.authorizers gives, with the event's identity source
// and TTL; events with different scopes are different routes; the result
// serves, refusing a request without a token.
func TestServerlessAuthorizers(t *testing.T) {
	read := func(f string) *Imported {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		im, err := Import(f, data, keyEnv(nil), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	im := read("testdata/authorizers-httpapi.yml")
	c := im.Config
	jwt := c.Authorizers["jwtAuth"]
	if jwt == nil || jwt.Type != config.AuthorizerJWT || jwt.Issuer != "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc" ||
		!reflect.DeepEqual(jwt.Audience, []string{"client-1"}) || !reflect.DeepEqual(jwt.IdentitySources, []string{"$request.header.Authorization"}) {
		t.Fatalf("jwtAuth: %+v", jwt)
	}
	chk := c.Authorizers["checker"]
	if chk == nil || chk.Type != config.AuthorizerRequest || chk.URL != "http://10.0.0.30:8080/authorize" ||
		chk.CacheTTL() != 60*time.Second || !reflect.DeepEqual(chk.IdentitySources, []string{"$request.header.X-Token"}) {
		t.Fatalf("checker: %+v", chk)
	}
	type rt struct {
		path, authorizer string
		scopes           []string
		methods          []string
	}
	var got []rt
	for _, r := range c.Routes {
		got = append(got, rt{r.Path, r.Authorizer, r.Scopes, r.Methods})
	}
	want := []rt{{"/user1", "jwtAuth", nil, []string{"GET"}}, {"/user2", "jwtAuth", []string{"email"}, []string{"GET", "POST"}},
		{"/checked", "checker", nil, []string{"GET"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("routes %+v, want %+v", got, want)
	}

	st := memory.New()
	defer st.Close()
	g, err := gateway.Build(c, gateway.Deps{Metrics: metrics.New(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/user1", nil))
	if w.Code != 401 || w.Body.String() != `{"message":"Unauthorized"}` {
		t.Fatalf("no token: %d %s", w.Code, w.Body)
	}

	rest := read("testdata/authorizers-rest.yml").Config
	auth := rest.Authorizers["auth"]
	if auth == nil || auth.Type != config.AuthorizerRequest || auth.CacheTTL() != 0 || auth.OnError != 503 ||
		!reflect.DeepEqual(auth.IdentitySources, []string{"method.request.header.Authorization"}) {
		t.Fatalf("auth: %+v", auth)
	}
	if cg := rest.Authorizers["CognitoAuthorizer"]; cg == nil || cg.Type != config.AuthorizerJWT {
		t.Fatalf("CognitoAuthorizer: %+v", cg)
	}
}
