package metrics

import "github.com/highwater-dev/highwater/processor"

// AppliesEarly passes on the wrapped writer's processor.EarlyApplier, so
// that counting a writer's rows does not stop the processor from applying
// an initial scan bigger than the buffer's budget ahead of its resolved
// timestamp.
func (w countingWriter) AppliesEarly() bool {
	ea, ok := w.Writer.(processor.EarlyApplier)
	return ok && ea.AppliesEarly()
}

var _ processor.EarlyApplier = countingWriter{}
