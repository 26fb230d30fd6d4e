package files

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/sinks"
)

// dirRule names a table's directory (sinks.NameRule): the table name as
// CockroachDB makes it a Kafka topic name (escape), kept when it is at most
// 248 bytes (SQLNameToKafkaName cuts at 249, so a 249-byte result may be a
// cut one) and is neither of highwater's own directories; otherwise cut and
// suffixed with a hash of the full name. The table catalog
// (_highwater/tables/<dir>.json, TableInfo.Name and Dir) records it.
var dirRule = sinks.NameRule{MaxBytes: 248, Escape: escape, Reserved: []string{internalDir, DeadLetterDir}}

// tableDir returns the directory of a source table. A kept name is the
// table's own escape, which no other table has; a mapped one is checked
// against the catalog, so that two long names sharing a prefix and a hash
// still get two directories.
func (w *Writer) tableDir(ctx context.Context, source string) (string, error) {
	if d, ok := w.dirs[source]; ok {
		return d, nil
	}
	keeps := dirRule.Keeps(source)
	d, err := dirRule.Map(source, func(d string) (bool, error) {
		if keeps && d == escape(source) {
			return false, nil
		}
		if other, ok := w.dirOwner[d]; ok {
			return other != source, nil
		}
		var ti TableInfo
		switch err := w.readJSON(ctx, catalogKey(d), &ti); {
		case errors.Is(err, errNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("read table catalog: %w", err)
		}
		return ti.Name != source, nil
	})
	if err != nil {
		return "", fmt.Errorf("table %q: directory: %w", source, err)
	}
	if d != escape(source) {
		w.logger.Info("table directory mapped", zap.String("table", source), zap.String("dir", d))
	}
	w.dirs[source], w.dirOwner[d] = d, source
	return d, nil
}
