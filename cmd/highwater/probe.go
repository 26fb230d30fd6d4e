package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/redact"
)

// probeCmd is the container health check: `highwater probe [URL]` exits 0
// when URL answers 2xx. Without a URL it asks /healthz of the metrics server
// this container's environment configures (HIGHWATER_METRICS_ADDR), so that
// a slim runtime image needs neither curl nor wget.
func newProbeCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe [URL]",
		Short: "Exit 0 if URL answers 2xx (the container health check)",
		Long: fmt.Sprintf(`Exits 0 when URL answers 2xx. The default URL is /healthz on %s's port
of this host, so that a slim runtime image needs neither curl nor wget.`, config.EnvName("metrics-addr")),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(cmd, "probe takes at most one URL, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return probe(cmd.Context(), args, timeout, getenv, stdout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

func probe(ctx context.Context, args []string, timeout time.Duration, getenv func(string) string, stdout io.Writer) error {
	var target string
	switch len(args) {
	case 0:
		u, err := probeURL(getenv(config.EnvName("metrics-addr")))
		if err != nil {
			return err
		}
		target = u
	default:
		target = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The URL may carry a password or a token: it is shown redacted.
	shown := config.RedactURL(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", shown, redact.Error(err, target))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", redact.Error(err, target))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s: %s", shown, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s", shown, body)
	return nil
}

// probeURL is the /healthz URL of a metrics server listening on addr
// (":9090", "0.0.0.0:9090", "[::]:9090", "host:9090"), as seen from the
// same host.
func probeURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("probe: no URL given and " + config.EnvName("metrics-addr") + " is not set")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("probe: metrics address %q: %w", addr, err)
	}
	// A wildcard listen address is reachable on loopback.
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
