package metrics

import (
	"context"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks"
)

// countingWriter embeds the sinks.Writer interface, which promotes only
// its methods: the optional interfaces the processor asks a writer for
// are passed through here, or counting rows would hide them.

var (
	_ sinks.FeedRecorder      = countingWriter{}
	_ processor.ChangeChecker = countingWriter{}
	_ processor.EarlyApplier  = countingWriter{}
)

// RecordFeeds passes sinks.FeedRecorder through to the wrapped writer, so
// that counting the rows does not hide it; a writer that records no feeds
// records none here either.
func (w countingWriter) RecordFeeds(ctx context.Context, group, frontier string, feeds []sinks.FeedTopic) error {
	if r, ok := w.Writer.(sinks.FeedRecorder); ok {
		return r.RecordFeeds(ctx, group, frontier, feeds)
	}
	return nil
}

// CheckChange passes processor.ChangeChecker through to the wrapped
// writer; a writer that checks nothing accepts every change here too.
func (w countingWriter) CheckChange(table *model.Table, ch sinks.Change) error {
	if c, ok := w.Writer.(processor.ChangeChecker); ok {
		return c.CheckChange(table, ch)
	}
	return nil
}

// AppliesEarly passes on the wrapped writer's processor.EarlyApplier, so
// that counting a writer's rows does not stop the processor from applying
// an initial scan bigger than the buffer's budget ahead of its resolved
// timestamp.
func (w countingWriter) AppliesEarly() bool {
	ea, ok := w.Writer.(processor.EarlyApplier)
	return ok && ea.AppliesEarly()
}
