package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// plainConfig is drawbridge with no guards: the forwarding path alone.
const plainConfig = `
listen: "{LISTEN}"
admin: "off"
state: {driver: memory}
server: {forwarder: {FORWARDER}}
# API Gateway's account default (10,000/s, burst 5,000) applies to every
# route: lifted, so that the bench measures forwarding, not 429s.
account_throttle: {rate: 1000000, burst: 1000000}
routes:
  - path: /small
    target: {BACKEND}/small
  - path: /large
    target: {BACKEND}/large
`

// guardsConfig is the blog's guard chain (resource policy + API key +
// usage plan + stage throttle) with limits high enough not to reject, plus
// the rejecting routes: no key (403), policy (403), throttled (429).
const guardsConfig = `
listen: "{LISTEN}"
admin: "off"
server: {forwarder: {FORWARDER}}
state: {driver: memory}
# API Gateway's account default (10,000/s, burst 5,000) applies to every
# route: lifted, so that the bench measures forwarding, not 429s.
account_throttle: {rate: 1000000, burst: 1000000}
throttle: {rate: 1000000, burst: 1000000}
resource_policy:
  Version: "2012-10-17"
  Statement:
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/*/forward
      Condition: {NotIpAddress: {"aws:SourceIp": ["127.0.0.0/8"]}}
    - Effect: Allow
      Principal: "*"
      Action: execute-api:Invoke
      Resource: ["execute-api:/*/*/forward", "execute-api:/*/*/throttled"]
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/*/denied
usage_plans:
  bench:
    quota: {limit: 1000000000, period: DAY}
    throttle: {rate: 1000000, burst: 1000000}
api_keys:
  - name: bench
    plan: bench
    value_env: DRAWBRIDGE_BENCH_KEY
routes:
  - path: /forward
    methods: [GET, POST]
    target: {BACKEND}/small
    api_key_required: true
  - path: /denied
    target: {BACKEND}/small
    api_key_required: true
  - path: /throttled
    target: {BACKEND}/small
    throttle: {rate: 0.001, burst: 1}
`

// asyncConfig is a GitHub-signed webhook route with durable delivery on
// the embedded store (fsync before 202).
const asyncConfig = `
listen: "{LISTEN}"
admin: "off"
state: {driver: embedded, path: "{DIR}/async.db"}
# API Gateway's account default (10,000/s, burst 5,000) applies to every
# route: lifted, so that the bench measures forwarding, not 429s.
account_throttle: {rate: 1000000, burst: 1000000}
routes:
  - path: /hooks/github
    methods: [POST]
    target: {BACKEND}/hook
    verify: {provider: github, secret_env: DRAWBRIDGE_BENCH_SECRET}
    delivery: {mode: async}
`

const asyncBody = `{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"octo/bench"}}`

// asyncScript makes wrk send signed webhooks, each with its own delivery
// id (a duplicate would be answered from the idempotency record instead
// of being stored).
func asyncScript() string {
	return fmt.Sprintf(`
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  tid = tonumber(tid) or 0
end
function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Delivery"] = string.format("bench-%%d-%%d-%%d", os.time(), tid, counter),
    ["X-Hub-Signature-256"] = %q,
  }, %q)
end
`, asyncSignature(), asyncBody)
}

// nginxArgv writes an nginx config tuned as a reverse proxy (one worker,
// upstream keep-alive, HTTP/1.1 upstream, Connection cleared) and returns
// the command that runs it in the foreground as a single process.
func nginxArgv(dir, addr, backend string) ([]string, error) {
	conf := fmt.Sprintf(`
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-body;
  proxy_temp_path %[1]s/nginx-proxy;
  fastcgi_temp_path %[1]s/nginx-fastcgi;
  uwsgi_temp_path %[1]s/nginx-uwsgi;
  scgi_temp_path %[1]s/nginx-scgi;
  keepalive_requests 100000;
  upstream backend {
    server %[3]s;
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen %[2]s;
    location = /return403 { default_type application/json; return 403 '{"message":"Forbidden"}'; }
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, addr, backend)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return []string{"nginx", "-p", dir, "-c", path}, nil
}

func haproxyArgv(dir, addr, backend string) ([]string, error) {
	conf := fmt.Sprintf(`
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, addr, backend)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return []string{"haproxy", "-db", "-f", path}, nil
}

func caddyArgv(dir, addr, backend string) ([]string, error) {
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://%s {\n\treverse_proxy %s\n}\n", addr, backend)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(strings.TrimLeft(conf, "\n")), 0o644); err != nil {
		return nil, err
	}
	return []string{"caddy", "run", "--adapter", "caddyfile", "--config", path}, nil
}
