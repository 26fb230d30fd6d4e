package postgres

// AppliesEarly reports that the writer may be given row versions ahead of
// the resolved timestamp, in a transaction without a checkpoint, and the
// same versions again later (processor.EarlyApplier): the mirror's MERGE
// keeps the newest _hw_updated of each key, whatever the order of the
// transactions, and the changelog each (key, _hw_updated) once. It is how
// an initial scan bigger than the buffer's disk budget is applied before
// its resolved timestamp arrives (docs/BUFFER.md).
func (w *Writer) AppliesEarly() bool { return true }
