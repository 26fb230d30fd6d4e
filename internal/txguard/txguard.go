// Package txguard holds the state every writer's window transaction
// (sinks.Tx in sinks/duckdb, sinks/postgres, sinks/files) keeps to refuse
// use after a failure or after it ended: the first failure, and whether
// Commit or Rollback has run.
package txguard

import (
	"errors"
	"fmt"

	"github.com/highwater-dev/highwater/sinks"
)

// Guard is a window transaction's failure and end. The zero Guard is a
// transaction in use.
type Guard struct {
	err  error
	done bool
}

// Check returns nil while the transaction may still be used, and otherwise
// why not: for a transaction that ended on a fence, the *sinks.FencedError
// (so that the caller learns why, not just that it ended); for one that
// ended otherwise, that it did; for one that failed, its first failure,
// wrapped.
func (g *Guard) Check() error {
	if g.done && errors.Is(g.err, sinks.ErrFenced) {
		return g.err
	}
	if g.done {
		return errors.New("window transaction already finished")
	}
	if g.err != nil {
		return fmt.Errorf("window transaction failed earlier: %w", g.err)
	}
	return nil
}

// Fail records err as the transaction's failure unless one is recorded
// already, and returns err.
func (g *Guard) Fail(err error) error {
	if g.err == nil {
		g.err = err
	}
	return err
}

// Set records err as the transaction's failure, replacing any earlier one
// (a fence found after a failure says better why the window is lost), and
// returns err.
func (g *Guard) Set(err error) error {
	g.err = err
	return err
}

// Err is the recorded failure, nil if none.
func (g *Guard) Err() error { return g.err }

// End marks the transaction ended (committed or rolled back).
func (g *Guard) End() { g.done = true }

// Ended reports whether End was called.
func (g *Guard) Ended() bool { return g.done }
