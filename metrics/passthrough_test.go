package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks"
)

// recordingWriter is a sinks.Writer that keeps the feeds it is told.
type recordingWriter struct {
	sinks.Writer
	got []sinks.FeedTopic
}

func (w *recordingWriter) RecordFeeds(_ context.Context, _, _ string, feeds []sinks.FeedTopic) error {
	w.got = append(w.got, feeds...)
	return nil
}

// TestCountingWriterKeepsTheFeedRecorder: wrapping the writer to count its
// rows must not hide sinks.FeedRecorder from the processor.
func TestCountingWriterKeepsTheFeedRecorder(t *testing.T) {
	inner := &recordingWriter{}
	r, ok := NewObserver().Writer(inner).(sinks.FeedRecorder)
	if !ok {
		t.Fatal("the counting writer is no sinks.FeedRecorder")
	}
	if err := r.RecordFeeds(context.Background(), "g", "shared", []sinks.FeedTopic{{Topic: "t", Feed: "f"}}); err != nil || len(inner.got) != 1 {
		t.Fatalf("RecordFeeds = %v; the writer got %v", err, inner.got)
	}
}

// checkingWriter is a sinks.Writer that refuses every change.
type checkingWriter struct{ sinks.Writer }

var errRefused = errors.New("the warehouse cannot store this")

func (checkingWriter) CheckChange(*model.Table, sinks.Change) error { return errRefused }

// TestCountingWriterKeepsTheChangeChecker: `highwater run` hands the
// processor the counting writer; without the pass-through the processor
// never asks the warehouse whether it can store a row, and such a row
// fails its whole window instead of being a poison record.
func TestCountingWriterKeepsTheChangeChecker(t *testing.T) {
	c, ok := NewObserver().Writer(checkingWriter{}).(processor.ChangeChecker)
	if !ok {
		t.Fatal("the counting writer is no processor.ChangeChecker")
	}
	if err := c.CheckChange(&model.Table{Name: "t"}, sinks.Change{}); !errors.Is(err, errRefused) {
		t.Fatalf("CheckChange = %v, want the writer's refusal", err)
	}
	// A writer that checks nothing accepts every change through it too.
	if err := NewObserver().Writer(&recordingWriter{}).(processor.ChangeChecker).CheckChange(&model.Table{Name: "t"}, sinks.Change{}); err != nil {
		t.Fatalf("CheckChange of a writer without checks = %v", err)
	}
}
