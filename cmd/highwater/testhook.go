package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
)

// testHookEnv names the end-to-end tests' hook (docs/TESTING.md): with
// HIGHWATER_TEST_HOOK_SIGSTOP=STAGE:N, `highwater run` stops its own
// process with SIGSTOP when the Nth window reaches STAGE (begin, written,
// commit or committed; see processor.WindowStage; each transaction of a
// group applied ahead of its resolved timestamp counts as a window), so that a test can freeze a member at
// a precise point of a window's life and resume it with SIGCONT. From then
// on it logs every stage of every window ("test hook: window stage"), so
// that the test can tell whether a window committed after the resume. It
// is a test hook, not a setting: no flag, no YAML field.
const testHookEnv = "HIGHWATER_TEST_HOOK_SIGSTOP"

// windowTestHook returns the processor's WindowHook for the value of
// testHookEnv, or nil when it is empty.
func windowTestHook(spec string, log *zap.Logger) (func(processor.WindowStage, hlc.Timestamp), error) {
	if spec == "" {
		return nil, nil
	}
	stage, n, ok := strings.Cut(spec, ":")
	count, err := strconv.Atoi(n)
	switch processor.WindowStage(stage) {
	case processor.WindowBegin, processor.WindowWritten, processor.WindowCommit, processor.WindowCommitted:
	default:
		ok = false
	}
	if !ok || err != nil || count < 1 {
		return nil, fmt.Errorf("%s=%q: want STAGE:N, STAGE one of begin, written, commit, committed and N >= 1", testHookEnv, spec)
	}
	log = log.With(zap.String("test_hook", testHookEnv))
	var seen atomic.Int64
	var stopped atomic.Bool
	return func(s processor.WindowStage, through hlc.Timestamp) {
		if stopped.Load() {
			log.Warn("test hook: window stage", zap.String("stage", string(s)), zap.Stringer("through", through))
			return
		}
		if string(s) != stage || seen.Add(1) != int64(count) {
			return
		}
		stopped.Store(true)
		log.Warn("test hook: stopping this process with SIGSTOP", zap.String("stage", stage), zap.Int("window", count), zap.Stringer("through", through))
		_ = log.Sync()
		stopSelf()
		log.Warn("test hook: resumed", zap.String("stage", stage), zap.Stringer("through", through))
	}, nil
}
