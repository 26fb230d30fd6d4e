package schemas

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riferrei/srclient"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/highwater-dev/highwater/internal/redact"
)

// RegistryOption configures a Registry.
type RegistryOption interface{ applyRegistry(*registryConfig) }

// Option configures both a Registry and a Decoder (WithLogger).
type Option interface {
	RegistryOption
	DecoderOption
}

type registryConfig struct {
	user, pass string
	tls        *tls.Config
	client     *http.Client
	log        *zap.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
}

type registryOptionFunc func(*registryConfig)

func (f registryOptionFunc) applyRegistry(c *registryConfig) { f(c) }

type loggerOption struct{ l *zap.Logger }

func (o loggerOption) applyRegistry(c *registryConfig) { c.log = o.l }
func (o loggerOption) applyDecoder(d *Decoder)         { d.log = o.l }

// WithLogger sets the logger of a Registry or Decoder (default: none). The
// registry logs failed fetches that it retries; the decoder logs schemas it
// cannot use.
func WithLogger(l *zap.Logger) Option {
	if l == nil {
		l = zap.NewNop()
	}
	return loggerOption{l}
}

// WithBasicAuth makes the registry client send HTTP basic authentication.
func WithBasicAuth(user, pass string) RegistryOption {
	return registryOptionFunc(func(c *registryConfig) { c.user, c.pass = user, pass })
}

// WithTLS sets the TLS configuration (CA, client certificate) of the
// registry client's transport. It is ignored with WithHTTPClient.
func WithTLS(cfg *tls.Config) RegistryOption {
	return registryOptionFunc(func(c *registryConfig) { c.tls = cfg })
}

// WithHTTPClient replaces the HTTP client used to reach the registry
// (default: a client with a 30 s timeout per request and WithTLS's config).
func WithHTTPClient(hc *http.Client) RegistryOption {
	return registryOptionFunc(func(c *registryConfig) { c.client = hc })
}

// WithRequestTimeout sets the timeout of one registry request (default
// 30 s, as CockroachDB's own registry client). It is ignored with
// WithHTTPClient.
func WithRequestTimeout(d time.Duration) RegistryOption {
	return registryOptionFunc(func(c *registryConfig) { c.timeout = d })
}

// WithRetryBackoff sets the exponential backoff between attempts while the
// registry is unreachable or answers 5xx: from min, doubling, capped at max
// (default 100 ms .. 5 s).
func WithRetryBackoff(min, max time.Duration) RegistryOption {
	return registryOptionFunc(func(c *registryConfig) {
		if min > 0 {
			c.minBackoff = min
		}
		if max >= c.minBackoff {
			c.maxBackoff = max
		}
	})
}

// Registry fetches writer schemas by id from a Confluent-compatible schema
// registry. Schemas are cached per id forever (registry ids are immutable);
// concurrent requests for one id share one fetch; fetches are retried with
// backoff while the registry is down, until the caller's context ends. It
// implements SchemaSource and is safe for concurrent use.
type Registry struct {
	url    string
	client *srclient.SchemaRegistryClient
	log    *zap.Logger
	minBO  time.Duration
	maxBO  time.Duration

	mu     sync.RWMutex
	cache  map[int]string
	flight singleflight.Group
}

// NewRegistry returns a Registry for the registry at url
// (e.g. "http://localhost:8081").
func NewRegistry(url string, opts ...RegistryOption) (*Registry, error) {
	if url == "" {
		return nil, errors.New("schema registry URL is empty")
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("schema registry URL %q: want http:// or https://", redact.URL(url))
	}
	cfg := registryConfig{log: zap.NewNop(), minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second, timeout: 30 * time.Second}
	for _, o := range opts {
		o.applyRegistry(&cfg)
	}
	hc := cfg.client
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.tls != nil {
			tr.TLSClientConfig = cfg.tls
		}
		hc = &http.Client{Transport: tr, Timeout: cfg.timeout}
	}
	// srclient keeps only the registry's error code, not the HTTP status,
	// and registries differ in the codes they send (srfake answers 401 with
	// code 50002). Our transport turns every non-2xx answer into a
	// *statusError carrying the status, which srclient passes through.
	wrapped := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped.Transport = statusTransport{base: base}
	hc = &wrapped
	client := srclient.CreateSchemaRegistryClientWithOptions(strings.TrimRight(url, "/"), hc, 16)
	// We cache ourselves, with single-flight; srclient's cache would only
	// hold a second copy.
	client.CachingEnabled(false)
	if cfg.user != "" || cfg.pass != "" {
		client.SetCredentials(cfg.user, cfg.pass)
	}
	return &Registry{
		url:    url,
		client: client,
		log:    cfg.log,
		minBO:  cfg.minBackoff,
		maxBO:  cfg.maxBackoff,
		cache:  make(map[int]string),
	}, nil
}

// errLeaderGone marks a shared fetch that ended because the context of the
// caller that started it ended; other callers start a fetch of their own.
var errLeaderGone = errors.New("schema fetch abandoned by its initiator")

// Schema returns the writer schema text of id. An id the registry does not
// know gives an error wrapping ErrUnknownSchema; it is not retried.
func (r *Registry) Schema(ctx context.Context, id int) (string, error) {
	r.mu.RLock()
	s, ok := r.cache[id]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	key := strconv.Itoa(id)
	for {
		ch := r.flight.DoChan(key, func() (any, error) { return r.fetch(ctx, id) })
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("fetch schema id %d: %w", id, ctx.Err())
		case res := <-ch:
			if res.Err != nil {
				if errors.Is(res.Err, errLeaderGone) && ctx.Err() == nil {
					continue
				}
				return "", res.Err
			}
			return res.Val.(string), nil
		}
	}
}

// fetch gets id from the registry, retrying transient failures until ctx
// ends.
func (r *Registry) fetch(ctx context.Context, id int) (string, error) {
	r.mu.RLock()
	s, ok := r.cache[id]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	backoff := r.minBO
	for attempt := 1; ; attempt++ {
		s, err := r.attempt(ctx, id)
		if err == nil {
			r.mu.Lock()
			r.cache[id] = s
			r.mu.Unlock()
			return s, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("fetch schema id %d: %w (%w)", id, errLeaderGone, ctx.Err())
		}
		if !retryable(err) {
			return "", err
		}
		// Jitter keeps a fleet of consumers from hammering a recovering
		// registry in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		r.log.Warn("schema registry fetch failed; retrying",
			zap.Int("schema_id", id), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("fetch schema id %d: %w (%w)", id, errLeaderGone, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, r.maxBO)
	}
}

// statusError is a registry answer other than 2xx.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// statusTransport turns non-2xx responses into *statusError.
type statusTransport struct{ base http.RoundTripper }

func (t statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || (resp.StatusCode >= 200 && resp.StatusCode <= 299) {
		return resp, err
	}
	defer resp.Body.Close()
	// The body is the registry's {"error_code":..,"message":..}; keep a
	// bounded amount for the error text.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return nil, &statusError{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
}

// attempt is one fetch. srclient's requests take no context, so the request
// runs in its own goroutine (bounded by the HTTP client's timeout) and the
// caller stops waiting when ctx ends.
func (r *Registry) attempt(ctx context.Context, id int) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		sch, err := r.client.GetSchema(id)
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{s: sch.Schema()}
	}()
	var res result
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res = <-ch:
	}
	if res.err == nil {
		if res.s == "" {
			return "", fmt.Errorf("fetch schema id %d: registry returned an empty schema", id)
		}
		return res.s, nil
	}
	var se *statusError
	if errors.As(res.err, &se) && se.status == http.StatusNotFound {
		return "", fmt.Errorf("schema id %d: %w (registry: %s)", id, ErrUnknownSchema, se.body)
	}
	// The URL may carry a password or a token, and the HTTP client's
	// errors quote the request URL: both are shown redacted.
	return "", fmt.Errorf("fetch schema id %d from %s: %w", id, redact.URL(r.url), redact.Error(res.err, r.url))
}

// retryable reports whether a failed attempt may succeed later: transport
// errors (registry unreachable), 5xx, 408 and 429. Other 4xx (bad
// credentials, unknown id) are permanent.
func retryable(err error) bool {
	if errors.Is(err, ErrUnknownSchema) {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.status >= 500 || se.status == http.StatusRequestTimeout || se.status == http.StatusTooManyRequests
	}
	// A certificate the client does not trust will not become trusted.
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return false
	}
	// A response body that is not the registry's JSON (e.g. a proxy's HTML
	// page) fails to unmarshal; anything else here is the transport.
	return true
}
