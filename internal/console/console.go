// Package console is the web console on the admin listener
// (docs/console.md): server-rendered pages over what the gateway already
// keeps (Prometheus metrics, the recent view of recent.go, the delivery
// queue, the config), and the one guard (guard.go) in front of the console
// and the JSON admin API.
//
// Pages are html/template, so everything shown is escaped in its context;
// the Content-Security-Policy allows no script at all and styles only from
// the embedded stylesheet, so even an escaping mistake could not run a
// webhook body's <script>. Every page reads without JavaScript; actions
// are forms that POST with a CSRF token.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Deps are what the console reads. Only Admin and Config are required.
type Deps struct {
	// Admin is the admin listener's API mux (admin.Handler): everything
	// the console does not serve goes there, behind the same guard.
	Admin http.Handler
	// Config returns the config in force (it changes on reload).
	Config func() *config.Config
	// Metrics is the process's registry (in-flight requests); its Recent
	// should be a *Recent for the overview and rejections pages.
	Metrics *metrics.Metrics
	// Deliveries is the delivery history (nil: the driver keeps none).
	Deliveries delivery.Ops
	// Gateway returns the gateway in force, for key quota usage (nil:
	// the keys page lists the config's keys without usage).
	Gateway func() *gateway.Gateway
	// Agents is the edge's agent registry (nil: no agents listener).
	Agents AgentSource
	// Log receives the console's actions (who replayed or purged what).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console is the admin listener's handler: the guard, the pages and the
// API behind it.
type Console struct {
	d      Deps
	guard  *guard
	pages  map[string]*template.Template
	recent *Recent
	h      http.Handler
}

// New builds the admin listener's handler around d.Admin.
func New(d Deps) *Console {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{d: d, pages: parsePages()}
	if d.Metrics != nil {
		c.recent, _ = d.Metrics.Recent.(*Recent)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/rejections", c.rejections)
	mux.HandleFunc("GET /console/deliveries", c.deliveries)
	mux.HandleFunc("GET /console/deliveries/{id}", c.deliveryPage)
	mux.HandleFunc("POST /console/deliveries/{id}/replay", c.action(c.replayOne))
	mux.HandleFunc("POST /console/deliveries/replay-dead", c.action(c.replayDead))
	mux.HandleFunc("POST /console/deliveries/purge", c.action(c.purge))
	mux.HandleFunc("GET /console/agents", c.agents)
	mux.HandleFunc("GET /console/keys", c.keys)
	mux.HandleFunc("GET /console/config", c.configPage)
	mux.HandleFunc("GET "+loginPath, c.loginForm)
	mux.HandleFunc("POST "+loginPath, c.login)
	mux.HandleFunc("POST /console/logout", c.action(c.logout))
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/static/favicon.svg", http.StatusMovedPermanently)
	})
	mux.Handle("/", d.Admin)
	c.guard = newGuard(d.Config, d.Now, d.Log, mux)
	c.h = headers(c.guard) // the guard's refusals carry them too
	return c
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.h.ServeHTTP(w, r) }

// CSP allows nothing but the console's own stylesheet and same-origin
// form posts: no script, no frame, no plugin, no remote anything.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the browser-facing safety headers on every guarded answer
// (the API's too: a JSON body is request data as well).
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer a browser
		// sends "Origin: null" with the console's own form posts, which
		// the guard must refuse as it refuses any opaque origin.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !open(r.URL.Path) && !strings.HasPrefix(r.URL.Path, "/console/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

type operatorKey struct{}

func withOperator(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, operatorKey{}, name)
}

// operator is the admin_auth token name the request authenticated with
// ("" without admin_auth).
func operator(r *http.Request) string {
	s, _ := r.Context().Value(operatorKey{}).(string)
	return s
}
