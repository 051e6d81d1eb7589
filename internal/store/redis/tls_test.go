package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestTLS: rediss:// to a redis-server that speaks only TLS, trusting the
// test's CA, works; a store trusting another CA is refused by Verify with
// an error that names the state URL without its password.
func TestTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	ctx := context.Background()

	good, err := redis.New(redis.Options{URL: srv.URL(), TLS: &redis.TLS{CA: srv.CA}})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := good.Verify(ctx); err != nil {
		t.Fatalf("Verify with the right CA: %v", err)
	}
	r, err := good.Admit(ctx, time.Now(), store.AdmitRequest{N: 1, Buckets: []store.Bucket{{Key: "tls", Rate: 1, Burst: 1}}})
	if err != nil || r.Refused != store.Admitted {
		t.Fatalf("Admit over TLS = %+v, %v", r, err)
	}

	// The password is wrong too, but the handshake fails first: the error
	// must be about the certificate, and must not show the password.
	wrong := redistest.NewCA(t, "another CA")
	url := "rediss://app:hunter2@" + srv.Addr + "/0"
	bad, err := redis.New(redis.Options{URL: url, TLS: &redis.TLS{CA: wrong.CertFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = bad.Verify(ctx)
	if err == nil {
		t.Fatal("Verify with another CA: nil error")
	}
	t.Logf("refused at start: %v", err)
	msg := err.Error()
	for _, want := range []string{"rediss://app:xxxxx@" + srv.Addr + "/0", "certificate"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error %q shows the password", msg)
	}
	if err := bad.Ready(ctx); err == nil {
		t.Error("Ready with another CA: nil error")
	}

	// A server that is down is no reason to refuse the start: the gateway
	// waits for it (503 meanwhile).
	srv.Kill()
	if err := good.Verify(ctx); err != nil {
		t.Errorf("Verify with Redis down = %v, want nil", err)
	}
}
