package processor

import "context"

// waitForBufferMemory finishes the window in flight first when the
// buffer's memory front is nearly full: its Trim frees the memory that the
// records just polled need. Ingesting them at once would spill to Badger
// the events the next windows apply soon, and reading them back from
// Badger and deleting them there costs more than the pause (on a backlog,
// ingest runs ahead of the windows). Without a window in flight nothing
// would free memory: ingest goes on and the buffer spills. Callers hold mu.
func (p *Processor) waitForBufferMemory(ctx context.Context) error {
	if p.inflight == nil || !p.cfg.Buffer.MemoryFull() {
		return nil
	}
	return p.reapFlush(ctx, true, true)
}
