package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbeSucceedsOnlyOn2xx(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: waiting for partitions", http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A port nothing listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // empty: success
	}{
		{"healthy URL", []string{srv.URL + "/healthz"}, nil, ""},
		{"503 fails with the body", []string{srv.URL + "/readyz"}, nil, "503 Service Unavailable: not ready: waiting for partitions"},
		{"404 fails", []string{srv.URL + "/nope"}, nil, "404"},
		{"default URL from a wildcard metrics address", nil, map[string]string{"HIGHWATER_METRICS_ADDR": ":" + port}, ""},
		{"default URL from 0.0.0.0", nil, map[string]string{"HIGHWATER_METRICS_ADDR": "0.0.0.0:" + port}, ""},
		{"nothing listening", []string{"http://" + closed + "/healthz"}, nil, "connection refused"},
		{"no URL and no metrics address", nil, nil, "HIGHWATER_METRICS_ADDR is not set"},
		{"bad metrics address", nil, map[string]string{"HIGHWATER_METRICS_ADDR": "9090"}, `metrics address "9090"`},
		{"two URLs", []string{srv.URL, srv.URL}, nil, "at most one URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := execute(context.Background(), append([]string{"probe"}, tc.args...), func(k string) string { return tc.env[k] }, &out, &errOut)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("probe failed: %v", err)
				}
				if !strings.Contains(out.String(), "ok") {
					t.Fatalf("probe output %q lacks the endpoint's answer", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("probe error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestProbeIsACommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer srv.Close()
	if out, err := runArgs(t, "probe", srv.URL+"/healthz"); err != nil {
		t.Fatalf("highwater probe: %v\n%s", err, out)
	}
	if _, err := runArgs(t, "probe", "--timeout", "1s", "http://127.0.0.1:1/healthz"); err == nil {
		t.Fatal("highwater probe of a closed port succeeded")
	} else if exitCode(err) != 1 {
		t.Fatalf("exit code %d for an unhealthy endpoint, want 1", exitCode(err))
	}
}
