package txguard

import (
	"errors"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/sinks"
)

func TestGuard(t *testing.T) {
	var g Guard
	if err := g.Check(); err != nil {
		t.Fatalf("new guard: %v", err)
	}
	first, second := errors.New("first"), errors.New("second")
	if got := g.Fail(first); got != first {
		t.Fatalf("Fail returned %v", got)
	}
	g.Fail(second)
	if err := g.Check(); !errors.Is(err, first) || errors.Is(err, second) || !strings.Contains(err.Error(), "failed earlier") {
		t.Fatalf("after two failures Check = %v, want the first, wrapped", err)
	}
	g.End()
	if err := g.Check(); err == nil || errors.Is(err, first) || !strings.Contains(err.Error(), "already finished") {
		t.Fatalf("ended: Check = %v", err)
	}

	// A fence says why the transaction ended, even after another failure.
	var f Guard
	f.Fail(first)
	fe := &sinks.FencedError{}
	f.Set(fe)
	f.End()
	var got *sinks.FencedError
	if err := f.Check(); !errors.As(err, &got) || got != fe {
		t.Fatalf("fenced: Check = %v, want the FencedError itself", err)
	}
	if !f.Ended() || f.Err() != fe {
		t.Fatalf("Ended %v Err %v", f.Ended(), f.Err())
	}
}
