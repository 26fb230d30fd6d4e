package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// An envelope the simulator cannot play is refused before it connects to
// anything, naming the values it can.
func TestSimulateRefusesUnknownEnvelope(t *testing.T) {
	var out, errOut bytes.Buffer
	err := execute(context.Background(), []string{"simulate", "--envelope", "bare", "--brokers", "127.0.0.1:1"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `"wrapped" and "enriched"`) {
		t.Fatalf("simulate --envelope bare: %v, want an error naming wrapped and enriched", err)
	}
	err = execute(context.Background(), []string{"simulate", "--enriched-properties", "source", "--brokers", "127.0.0.1:1"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "only usable with envelope=enriched") {
		t.Fatalf("simulate --enriched-properties without --envelope enriched: %v", err)
	}
}
