// Package oidcop runs a real OpenID Connect provider on loopback for
// tests: the example OP server of zitadel/oidc (an OpenID Certified
// library), built from the Go module proxy at the pinned Version into the
// user cache directory by internal/testbin, as the Lambda RIE is. It
// exists so the JWT authorizer is proven against tokens, discovery and a
// JWKS that a real issuer produces, not against keys the test made.
//
// The example OP keeps its state in memory and makes a new RS256 signing
// key (with a new kid) each time it starts: Restart is a key rotation.
// Tokens come from the authorization code flow with the static client
// "web" (secret "secret") and the static user test-user@localhost
// (password "verysecure"), which the test drives over HTTP as a browser
// would.
//
// Why not Dex: the module proxy serves github.com/dexidp/dex only up to
// v2.13.0+incompatible (its later go.mod lacks the /v2 suffix), and a Dex
// build compiles its storage backends, gRPC and Kubernetes clients: far
// over the few minutes a cold CI build may take. This OP builds cold in
// about two minutes on two cores (docs/authorizers.md#testing).
package oidcop

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/testbin"
)

// Module and Version pin the provider.
const (
	Module  = "github.com/zitadel/oidc/v3/example/server"
	Version = "v3.53.0"
)

// Client, Secret, User and Password are the example OP's static client
// and user.
const (
	Client   = "web"
	Secret   = "secret"
	User     = "test-user@localhost"
	Password = "verysecure"
	redirect = "http://127.0.0.1:1/callback" // never dialled: the flow stops at the redirect
)

// Binary returns the path of the pinned OP, built once into the user
// cache directory by internal/testbin.
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Install(t, testbin.Program{Owner: "oidcop", Dir: filepath.Join("zitadel-oidc-op", Version), Exe: "server"},
		Module, Version)
}

// Provider is a running OP.
type Provider struct {
	// Issuer is the OP's issuer, http://localhost:PORT/ (the example OP
	// names itself localhost).
	Issuer string
	port   int
	bin    string
	t      testing.TB

	mu  sync.Mutex
	cmd *exec.Cmd
	log *logBuffer
}

// logBuffer is the OP's output, written by the process's copier and read
// by the test.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start builds (once) and starts the OP on a free loopback port; it is
// stopped when the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	bin := Binary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &Provider{Issuer: fmt.Sprintf("http://localhost:%d/", port), port: port, bin: bin, t: t}
	p.start()
	t.Cleanup(p.Stop)
	return p
}

func (p *Provider) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = &logBuffer{}
	cmd := exec.Command(p.bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PORT=" + strconv.Itoa(p.port), "REDIRECT_URI=" + redirect}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("oidcop: start: %v", err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.Issuer + ".well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("oidcop: not serving discovery after 30s: %v\n%s", err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the OP (the provider "down"). Safe to call twice.
func (p *Provider) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
	p.cmd = nil
}

// Restart stops and starts the OP on the same port: a new signing key.
func (p *Provider) Restart() {
	p.Stop()
	p.start()
}

// Token runs the authorization code flow as the static user and returns
// the ID token the OP issues (RS256, aud "web", about an hour of life).
func (p *Provider) Token(t testing.TB, scopes ...string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	var doc struct {
		Auth  string `json:"authorization_endpoint"`
		Token string `json:"token_endpoint"`
	}
	resp, err := hc.Get(p.Issuer + ".well-known/openid-configuration")
	if err != nil {
		t.Fatalf("oidcop: discovery: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc.Auth == "" || doc.Token == "" {
		t.Fatalf("oidcop: discovery: %v %+v", err, doc)
	}
	scope := strings.Join(append([]string{"openid"}, scopes...), " ")
	q := url.Values{"client_id": {Client}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {scope}, "state": {"s"}, "nonce": {"n"}}
	resp, err = hc.Get(doc.Auth + "?" + q.Encode())
	if err != nil {
		t.Fatalf("oidcop: authorize: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("oidcop: authorize ended at %s (%d), not the login page", resp.Request.URL, resp.StatusCode)
	}
	resp, err = hc.PostForm(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path, url.Values{"id": {id}, "username": {User}, "password": {Password}})
	if err != nil {
		t.Fatalf("oidcop: login: %v", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), redirect) {
		t.Fatalf("oidcop: login answered %d, location %v (%v)", resp.StatusCode, loc, err)
	}
	code := loc.Query().Get("code")
	tr := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	req, _ := http.NewRequest(http.MethodPost, doc.Token, strings.NewReader(tr.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(Client, Secret)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatalf("oidcop: token: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil || out.IDToken == "" {
		t.Fatalf("oidcop: token answered %d %s", resp.StatusCode, body)
	}
	return out.IDToken
}
