package processor

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/highwater-dev/highwater/schemas"
)

// Time comes from the cluster, within reason. A resolved timestamp raises
// its partition's frontier and the checkpoint written through it, and
// checkpoints never move back; a row version's `updated` decides which
// version wins. One timestamp far in the future (a forged or corrupted
// message, a node whose clock jumped) would therefore close a window
// through it and make every later real row of the partition look older
// than the checkpoint: dropped as a duplicate, silently and for good. So a
// record whose HLC wall time is beyond the local clock plus
// Config.MaxClockSkew is poison, handled by Config.OnError at ingest like an
// undecodable one: it never reaches the buffer, the frontier or a
// checkpoint.

// DefaultMaxClockSkew is Config.MaxClockSkew's default. CockroachDB's nodes
// stay within --max-offset of each other (500ms by default; a node whose
// clock strays further shuts itself down), and timestamps it writes
// legitimately ahead of its clock (GLOBAL tables' future-time writes and
// leading closed timestamps) lead it by about --max-offset plus network
// latency: around a second. The rest of the margin is for highwater's own
// host: an NTP-synchronised clock is off by milliseconds, a VM that paused
// or lost NTP by seconds to minutes. Five minutes is also the skew Kerberos
// tolerates between hosts by default. A timestamp in the year 2200 is off
// by centuries. Change it only for a host whose clock may lag the
// cluster's by more (better: fix its clock).
const DefaultMaxClockSkew = 5 * time.Minute

// ErrClockSkew marks a record whose timestamp is beyond the local clock
// plus Config.MaxClockSkew. The error that carries it is a
// *schemas.DecodeError naming the record, so it is a poison record.
var ErrClockSkew = errors.New("timestamp from the future")

// clockLimit is the highest HLC wall time (Unix nanoseconds) accepted at
// now: now plus skew, saturating instead of overflowing for a huge skew.
func clockLimit(now time.Time, skew time.Duration) int64 {
	n := now.UnixNano()
	if skew > 0 && n > math.MaxInt64-int64(skew) {
		return math.MaxInt64
	}
	return n + int64(skew)
}

// checkClock returns nil when rec's timestamp is within limit (a wall time
// from clockLimit at now), else a poison error naming the record, its HLC
// and the bound.
func (p *Processor) checkClock(r *kgo.Record, rec schemas.Record, now time.Time, limit int64) error {
	if rec.Updated.WallTime <= limit {
		return nil
	}
	what := "row timestamp (updated)"
	if rec.Resolved {
		what = "resolved timestamp"
	}
	return &schemas.DecodeError{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, SchemaID: rec.ValueSchemaID,
		Err: fmt.Errorf("%w: %s %s (%s) is after the local clock %s plus --max-clock-skew %s (%s)",
			ErrClockSkew, what, rec.Updated, rec.Updated.Time().Format(time.RFC3339), now.UTC().Format(time.RFC3339),
			p.cfg.MaxClockSkew, time.Unix(0, limit).UTC().Format(time.RFC3339)),
	}
}
