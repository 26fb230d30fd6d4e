package processor

import (
	"time"
)

// errorNote is the last error the member met and went on from (a window
// that failed and is retried, a fetch error), for the status page: a feed
// that stalls with no error in sight is the hardest to diagnose.
type errorNote struct {
	msg string
	at  time.Time
}

// noteError records err as the last error. Safe for concurrent use.
func (p *Processor) noteError(err error) {
	p.lastErr.Store(&errorNote{msg: err.Error(), at: time.Now()})
}
