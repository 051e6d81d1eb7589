package redis

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURLForms(t *testing.T) {
	for _, c := range []struct {
		url  string
		want target
	}{
		{"redis://127.0.0.1:6379/2", target{addrs: []string{"127.0.0.1:6379"}, db: 2}},
		{"rediss://u:pw@cache.example:6380", target{addrs: []string{"cache.example:6380"}, user: "u", password: "pw", tls: true}},
		{"redis://app@h:1", target{addrs: []string{"h:1"}, user: "app"}},
		{"redis+cluster://app@h:1", target{form: topoCluster, addrs: []string{"h:1"}, user: "app"}},
		{"unix:///run/redis.sock?db=3", target{addrs: []string{"/run/redis.sock"}, db: 3}},
		{"redis://h:1/0?pool_size=5", target{addrs: []string{"h:1"}}},
		{"redis+sentinel://:pw@h1:26379,h2:26379/mymaster/3", target{form: topoSentinel, addrs: []string{"h1:26379", "h2:26379"}, master: "mymaster", db: 3, password: "pw"}},
		{"redis+sentinel://h1/mymaster", target{form: topoSentinel, addrs: []string{"h1:26379"}, master: "mymaster"}},
		{"redis://localhost", target{addrs: []string{"localhost:6379"}}},
		{"redis+cluster://h1:6379,[::1]:6380", target{form: topoCluster, addrs: []string{"h1:6379", "[::1]:6380"}}},
	} {
		got, err := parseURL(c.url)
		got.single = nil // go-redis's own options, read by ParseURL
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseURL(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
	for _, bad := range []string{
		"http://h:1", "redis://h:", "redis://:pw@h1:1,h2:2", "redis+sentinel://:pw@h1:26379",
		"redis+cluster://h:1/2", "redis://h:1/x", "redis://h:99999", "redis://:pw@h:1/?password=pw2", "h:1",
	} {
		_, err := parseURL(bad)
		if err == nil {
			t.Errorf("parseURL(%q) = nil error", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("parseURL(%q) error %q shows the password", bad, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:secret@h:1/0":           "redis://u:xxxxx@h:1/0",
		"redis://secret@h:1":               "redis://:xxxxx@h:1",
		"redis+sentinel://:s3@h1:1,h2:2/m": "redis+sentinel://:xxxxx@h1:1,h2:2/m",
		"rediss://h:1":                     "rediss://h:1",
		"not a url with p@ss":              "state.url",
		"redis+cluster://u:p@ss@h1:1,h2:2": "redis+cluster://u:xxxxx@h1:1,h2:2",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewNeedsOneForm(t *testing.T) {
	for _, o := range []Options{
		{},
		{URL: "redis://h:1", Cluster: []string{"h:2"}},
		{URL: "redis://h:1", Sentinel: &Sentinel{Master: "m", Addrs: []string{"h:3"}}},
		{Sentinel: &Sentinel{Addrs: []string{"h:3"}}},
		{URL: "redis://h:1", TLS: &TLS{Cert: "c.pem"}},
		{URL: "redis://h:1", TLS: &TLS{CA: "/nonexistent/ca.pem"}},
	} {
		if s, err := New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v) = nil error", o)
		}
	}
	for _, o := range []Options{
		{Sentinel: &Sentinel{Master: "m", Addrs: []string{"h:3"}}},
		{Cluster: []string{"h:1", "h:2"}},
		{URL: "redis+cluster://h:1"},
	} {
		s, err := New(o)
		if err != nil {
			t.Fatalf("New(%+v): %v", o, err)
		}
		s.Close()
	}
}

func TestDescribeHasNoPassword(t *testing.T) {
	for o, want := range map[*Options]string{
		{URL: "redis://u:secret@h:1/0"}: "redis://u:xxxxx@h:1/0",
		{Sentinel: &Sentinel{Master: "m", Addrs: []string{"a:1", "b:2"}, Password: "secret"}}: "a:1,b:2 (sentinel master m)",
		{Cluster: []string{"a:1", "b:2"}, Password: "secret"}:                                 "a:1,b:2 (cluster)",
	} {
		s, err := New(*o)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		s.Close()
	}
}
