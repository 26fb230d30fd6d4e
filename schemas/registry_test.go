package schemas

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const fooKeySchema = `{"type":"record","name":"foo","fields":[{"type":["null","long"],"name":"a","default":null,"__crdb__":"a INT8 NOT NULL"}]}`

// countFetches makes fake count GET /schemas/ids/ requests.
func countFetches(fake *srfake.Registry) *atomic.Int64 {
	var n atomic.Int64
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			n.Add(1)
		}
		return false
	})
	return &n
}

func TestRegistryCachesSchemaByID(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	n := countFetches(fake)
	for range 3 {
		s, err := reg.Schema(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if s != fooKeySchema {
			t.Fatalf("schema %q", s)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("registry asked %d times for one id, want 1", got)
	}
}

func TestRegistryConcurrentCallsShareOneFetch(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	release := make(chan struct{})
	var n atomic.Int64
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			n.Add(1)
			<-release // hold the first fetch so that the others pile up
		}
		return false
	})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			s, err := reg.Schema(context.Background(), 1)
			if err == nil && s != fooKeySchema {
				err = errors.New("wrong schema")
			}
			errs <- err
		})
	}
	for n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Whatever the interleaving, a caller either joins the fetch in flight
	// or finds its result cached.
	if got := n.Load(); got != 1 {
		t.Errorf("%d fetches for one id, want 1", got)
	}
}

func TestRegistryUnknownIDIsNotRetried(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	n := countFetches(fake)
	_, err := reg.Schema(context.Background(), 42)
	if !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("error %v, want ErrUnknownSchema", err)
	}
	if !strings.Contains(err.Error(), "42") {
		t.Errorf("error %q does not name the id", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d requests for an unknown id, want 1 (no retries)", got)
	}
}

func TestRegistryRetries5xxUntilItAnswers(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	var n atomic.Int64
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable) // no body: srclient reports the status line
			return true
		case 2, 3:
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error_code":50001,"message":"store error"}`))
			return true
		}
		return false
	})
	s, err := reg.Schema(context.Background(), 1)
	if err != nil || s != fooKeySchema {
		t.Fatalf("Schema = %q, %v", s, err)
	}
	if got := n.Load(); got != 4 {
		t.Errorf("%d requests, want 3 failures then success", got)
	}
}

func TestRegistryRetriesWhileUnreachable(t *testing.T) {
	// Take a free port, and serve the registry on it only after the client
	// has failed to connect a few times.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	core, logs := observer.New(zap.WarnLevel)
	reg, err := NewRegistry("http://"+addr, WithRetryBackoff(time.Millisecond, 10*time.Millisecond), WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := reg.Schema(context.Background(), 1)
		done <- result{s, err}
	}()
	for logs.FilterMessage("schema registry fetch failed; retrying").Len() < 3 {
		time.Sleep(time.Millisecond)
	}
	fake := srfake.NewRegistry()
	fake.SeedSchema("foo-key", 1, 1, sr.Schema{Schema: fooKeySchema})
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	srv := &http.Server{Handler: fake.Handler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	res := <-done
	if res.err != nil || res.s != fooKeySchema {
		t.Fatalf("Schema = %q, %v", res.s, res.err)
	}
}

func TestRegistryContextCancelStopsRetries(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	var n atomic.Int64
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		n.Add(1)
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := reg.Schema(ctx, 1)
		done <- err
	}()
	for n.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	// A later caller with a live context starts its own fetch and gets
	// the schema once the registry recovers.
	fake.ClearInterceptors()
	s, err := reg.Schema(context.Background(), 1)
	if err != nil || s != fooKeySchema {
		t.Fatalf("after recovery: %q, %v", s, err)
	}
}

func TestRegistryWaiterTakesOverWhenInitiatorGivesUp(t *testing.T) {
	fake, reg := newSeededRegistry(t, map[int]string{1: fooKeySchema})
	var n atomic.Int64
	var down atomic.Bool
	down.Store(true)
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		n.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := reg.Schema(ctx1, 1); first <- err }()
	for n.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := reg.Schema(context.Background(), 1); second <- err }()
	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	down.Store(false)
	if err := <-second; err != nil {
		t.Fatalf("second caller, whose context is live, failed: %v", err)
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	fake := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))))
	t.Cleanup(fake.Close)
	fake.SeedSchema("foo-key", 1, 1, sr.Schema{Schema: fooKeySchema})
	for _, tc := range []struct {
		name string
		opts []RegistryOption
		ok   bool
	}{
		{"right credentials", []RegistryOption{WithBasicAuth("alice", "s3cret")}, true},
		{"wrong password", []RegistryOption{WithBasicAuth("alice", "nope")}, false},
		{"no credentials", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := NewRegistry(fake.URL(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			// Auth failures are permanent: no retry loop to time out of.
			s, err := reg.Schema(context.Background(), 1)
			if tc.ok && (err != nil || s != fooKeySchema) {
				t.Fatalf("Schema = %q, %v", s, err)
			}
			if !tc.ok && err == nil {
				t.Fatal("unauthenticated fetch succeeded")
			}
		})
	}
}

func TestRegistryTLS(t *testing.T) {
	fake := srfake.NewRegistry()
	fake.SeedSchema("foo-key", 1, 1, sr.Schema{Schema: fooKeySchema})
	srv := httptest.NewUnstartedServer(fake.Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	reg, err := NewRegistry(srv.URL, WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := reg.Schema(context.Background(), 1); err != nil || s != fooKeySchema {
		t.Fatalf("Schema = %q, %v", s, err)
	}
	// Without the CA the certificate is refused, and not retried forever.
	untrusting, err := NewRegistry(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusting.Schema(context.Background(), 1); err == nil {
		t.Fatal("fetch over an untrusted certificate succeeded")
	}
}

func TestNewRegistryRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8081", "ftp://x"} {
		if _, err := NewRegistry(u); err == nil {
			t.Errorf("NewRegistry(%q) succeeded", u)
		}
	}
}
