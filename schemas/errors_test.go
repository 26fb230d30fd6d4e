package schemas

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// failingSource is a schema source that fails every lookup with err.
type failingSource struct{ err error }

func (f failingSource) Schema(context.Context, int) (string, error) { return "", f.err }

func TestSchemaSourceFailuresAreMarked(t *testing.T) {
	for _, c := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"registry down", errors.New("dial tcp: connection refused"), true},
		{"unknown id", fmt.Errorf("schema id 9: %w", ErrUnknownSchema), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewDecoder(failingSource{c.err}).Extract(context.Background(), "t", 0, 1, frame(9, []byte{0}), frame(9, []byte{0}))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, ErrSchemaUnavailable); got != c.unavailable {
				t.Fatalf("%v: errors.Is(ErrSchemaUnavailable) = %v, want %v", err, got, c.unavailable)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("%v does not wrap the source's error", err)
			}
		})
	}
}
