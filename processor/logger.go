package processor

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// kgoLogger routes franz-go's logs into zap; franz-go's info level is chatty
// about routine group management, so it is logged at debug.
type kgoLogger struct{ l *zap.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Core().Enabled(zap.DebugLevel) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key, _ := keyvals[i].(string)
		fields = append(fields, zap.Any(key, keyvals[i+1]))
	}
	l := k.l.With(zap.String("component", "kafka"))
	switch level {
	case kgo.LogLevelError:
		l.Error(msg, fields...)
	case kgo.LogLevelWarn:
		l.Warn(msg, fields...)
	default:
		l.Debug(msg, fields...)
	}
}
