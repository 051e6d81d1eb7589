package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// The admin listener's guard: one gate for the console and the JSON
// deliveries API (docs/console.md, "Safety"). In order:
//
//  1. /healthz, /readyz and /metrics pass untouched: probes and scrapers
//     carry no token and send the pod's address as Host, and these answer
//     no request data and change nothing.
//  2. A Host that is neither an IP address, localhost nor one of
//     admin_hosts is refused (403): a DNS-rebinding page reaches the
//     listener under its own name, never under one of these.
//  3. A state-changing request (anything but GET, HEAD, OPTIONS) that a
//     browser marks as coming from another site (Sec-Fetch-Site other than
//     same-origin or none, or an Origin other than the listener's own) is
//     refused (403). Requests without either header (the CLI, curl) pass.
//  4. With admin_auth, a request without a valid token gets 401 (the API)
//     or the login form (console pages); a client network that keeps
//     presenting wrong tokens is locked out for a while (lockout.go).
//
// The console's own forms also carry a CSRF token (console.go).

// SessionCookie is the console's login cookie: the token's name, an
// expiry and their MAC under a key made at start (a restart logs everyone
// out), never the token itself.
const SessionCookie = "drawbridge_session"

// SessionTTL is how long a console login lasts.
const SessionTTL = 12 * time.Hour

type guard struct {
	cfg  func() *config.Config
	key  [32]byte // MACs sessions and CSRF tokens; random per process
	now  func() time.Time
	lock *lockout // wrong tokens, per client network
	next http.Handler
}

func newGuard(cfg func() *config.Config, now func() time.Time, log *slog.Logger, next http.Handler) *guard {
	g := &guard{cfg: cfg, now: now, lock: newLockout(now, log), next: next}
	rand.Read(g.key[:])
	return g
}

// open are the paths outside the guard.
func open(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if open(r.URL.Path) {
		g.next.ServeHTTP(w, r)
		return
	}
	cfg := g.cfg()
	if !hostAllowed(r.Host, cfg.AdminHosts) {
		refuse(w, r, http.StatusForbidden, "forbidden: this listener does not answer to host "+hostOnly(r.Host)+" (admin_hosts)")
		return
	}
	if unsafeMethod(r.Method) && crossSite(r) {
		refuse(w, r, http.StatusForbidden, "forbidden: cross-site request")
		return
	}
	if cfg.AdminAuth != nil && !public(r.URL.Path) {
		name, ok, wait := g.identity(r, cfg.AdminAuth)
		if wait > 0 {
			tooManyFailures(w, r, wait)
			return
		}
		if !ok {
			if isPage(r) {
				http.Redirect(w, r, loginPath, http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="drawbridge admin"`)
			refuse(w, r, http.StatusUnauthorized, "unauthorized: an admin_auth token is required")
			return
		}
		r = r.WithContext(withOperator(r.Context(), name))
	}
	g.next.ServeHTTP(w, r)
}

// public are the console's paths a signed-out browser needs: the login
// form and the stylesheet and icon it shows.
func public(path string) bool {
	return path == loginPath || path == "/favicon.ico" || strings.HasPrefix(path, "/console/static/")
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// crossSite reports whether a browser says the request comes from another
// site or origin. Same-site is refused too: another port of this host (the
// public listener's pages) is same-site.
func crossSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return true // "null" (sandboxed frames, file:) and garbage
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// hostAllowed: an IP literal (DNS rebinding needs a name), localhost, or
// one of the configured names, with any port.
func hostAllowed(host string, names []string) bool {
	h := hostOnly(host)
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), h) {
			return true
		}
	}
	return false
}

func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// isPage: a console page rather than the JSON API (which answers 401).
func isPage(r *http.Request) bool {
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/console/")
}

// refuse answers the API in JSON and a browser in text.
func refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isPage(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		w.Write([]byte(msg + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// identity is the operator a request authenticates as: a bearer token
// whose SHA-256 is configured, or a valid session cookie. A bearer token
// from a locked-out network is not looked at: wait says for how long.
func (g *guard) identity(r *http.Request, a *config.AdminAuth) (name string, ok bool, wait time.Duration) {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return g.token(r, a, strings.TrimSpace(h[7:]))
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		name, ok = g.session(c.Value, a)
	}
	return name, ok, 0
}

// token checks a presented token (a bearer header's or the login form's)
// unless r's network is locked out, and counts a wrong one.
func (g *guard) token(r *http.Request, a *config.AdminAuth, token string) (name string, ok bool, wait time.Duration) {
	if wait := g.lock.wait(r.RemoteAddr); wait > 0 {
		return "", false, wait
	}
	if name, ok = tokenName(a, token); !ok {
		g.lock.fail(r.RemoteAddr)
	}
	return name, ok, 0
}

// tooManyFailures refuses a locked-out network's token: 429 with
// Retry-After in whole seconds.
func tooManyFailures(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := strconv.Itoa(int((wait + time.Second - 1) / time.Second))
	w.Header().Set("Retry-After", secs)
	refuse(w, r, http.StatusTooManyRequests, "too many wrong tokens from this network: try again in "+secs+" s")
}

// tokenName compares digests in constant time and looks at every token,
// so the time taken tells nothing about which one nearly matched.
func tokenName(a *config.AdminAuth, token string) (string, bool) {
	if token == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(token))
	name, ok := "", false
	for _, t := range a.Tokens {
		if subtle.ConstantTimeCompare(d[:], t.Digest[:]) == 1 {
			name, ok = t.Name, true
		}
	}
	return name, ok
}

// newSession is the cookie value for name: base64(expiry ‖ name) "." MAC.
func (g *guard) newSession(name string) string {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, uint64(g.now().Add(SessionTTL).Unix()))
	b = append(b, name...)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(g.mac("session", b))
}

// session checks a cookie value; a token removed from the config (and
// reloaded) ends its sessions.
func (g *guard) session(v string, a *config.AdminAuth) (string, bool) {
	p, m, ok := strings.Cut(v, ".")
	if !ok {
		return "", false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(m)
	if err1 != nil || err2 != nil || len(b) < 8 || !hmac.Equal(mac, g.mac("session", b)) {
		return "", false
	}
	if time.Unix(int64(binary.BigEndian.Uint64(b)), 0).Before(g.now()) {
		return "", false
	}
	name := string(b[8:])
	for _, t := range a.Tokens {
		if t.Name == name {
			return name, true
		}
	}
	return "", false
}

func (g *guard) mac(purpose string, b []byte) []byte {
	h := hmac.New(sha256.New, g.key[:])
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// csrf is the token the console's forms carry for operator name ("" when
// the listener has no admin_auth): bound to the operator, unknowable
// without reading one of the console's pages, which another site cannot.
func (g *guard) csrf(operator string) string {
	return base64.RawURLEncoding.EncodeToString(g.mac("csrf", []byte(operator)))
}

func (g *guard) csrfOK(operator, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(g.csrf(operator)))
}
