package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/highwater-dev/highwater/internal/redact"
)

// registry registers schemas exactly as CockroachDB's confluentSchemaRegistry
// does (schema_registry.go, §1.3): POST {url}/subjects/{subject}/versions with
// Content-Type application/vnd.schemaregistry.v1+json and the body
// {"schema":"..."} written by json.Encoder; the response's id goes into the
// wire header. Results are cached per (subject, schema).
type registry struct {
	base  string
	http  *http.Client
	cache map[[2]string]uint32
}

func newRegistry(base string) (*registry, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("schema registry URL %q: want http(s)://host[:port][/path]", redact.URL(base))
	}
	return &registry{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: 30 * time.Second}, cache: map[[2]string]uint32{}}, nil
}

type registerRequest struct {
	Schema string `json:"schema"`
}

type registerResponse struct {
	ID int64 `json:"id"`
}

// register returns the registry id of schema under subject, registering it
// if needed. Like CockroachDB it retries a failed request a few times.
func (r *registry) register(ctx context.Context, subject, schema string) (uint32, error) {
	if id, ok := r.cache[[2]string{subject, schema}]; ok {
		return id, nil
	}
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(registerRequest{Schema: schema}); err != nil {
		return 0, fmt.Errorf("encode register request: %w", err)
	}
	endpoint := r.base + "/subjects/" + url.PathEscape(subject) + "/versions"
	var lastErr error
	backoff := 50 * time.Millisecond
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("register subject %s: %w (last error: %v)", subject, ctx.Err(), lastErr)
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		id, retry, err := r.post(ctx, endpoint, body.Bytes())
		if err == nil {
			r.cache[[2]string{subject, schema}] = id
			return id, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return 0, fmt.Errorf("register schema under subject %s: %w", subject, lastErr)
}

func (r *registry) post(ctx context.Context, endpoint string, body []byte) (id uint32, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, true, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode >= 500, fmt.Errorf("POST %s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(b))
	}
	var out registerResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, false, fmt.Errorf("POST %s: decode response %q: %w", endpoint, b, err)
	}
	if out.ID < 0 || out.ID > 1<<32-1 {
		return 0, false, fmt.Errorf("POST %s: schema id %d out of range", endpoint, out.ID)
	}
	return uint32(out.ID), false, nil
}
