package files

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
)

// ndjsonEncoder writes one NDJSON file of a table version, a JSON object
// per line with the version's columns, _hw_updated (the HLC as text) and
// _hw_op, through the writer's compressor if it has one.
type ndjsonEncoder struct {
	v     *version
	count *countingWriter
	jw    io.WriteCloser
	line  []byte
}

func newNDJSONEncoder(v *version, cw *countingWriter, codec compressor) (*ndjsonEncoder, error) {
	e := &ndjsonEncoder{v: v, count: cw, jw: nopCloser{cw}}
	if codec.wrap != nil {
		var err error
		if e.jw, err = codec.wrap(cw); err != nil {
			return nil, fmt.Errorf("create data file: %w", err)
		}
	}
	return e, nil
}

func (e *ndjsonEncoder) writeRow(h hlc.Timestamp, op sinks.Op, r *reader) error {
	b := append(e.line[:0], '{')
	for j, c := range e.v.cols {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.name)
		b = append(b, ':')
		b = c.appendJSON(b, r)
	}
	b = append(b, `,"`+sinks.UpdatedColumn+`":"`...)
	b = h.AppendText(b)
	b = append(b, `","`+sinks.OpColumn+`":"`...)
	b = append(b, op.String()...)
	b = append(b, "\"}\n"...)
	e.line = b
	if r.err != nil {
		return r.err
	}
	if _, err := e.jw.Write(b); err != nil {
		return fmt.Errorf("write ndjson row: %w", err)
	}
	return nil
}

// size is the bytes written to the file, after compression.
func (e *ndjsonEncoder) size() int64 { return e.count.n }

func (e *ndjsonEncoder) close() error { return e.jw.Close() }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// appendJSON appends the JSON rendering of one encoded column value.
func (c *column) appendJSON(b []byte, r *reader) []byte {
	if r.byte() == 0 {
		return append(b, "null"...)
	}
	if c.codec != codecList {
		return c.leafJSON(b, r)
	}
	n := int(r.uvarint())
	if n > len(r.b) {
		r.err = errCorrupt
		return b
	}
	b = append(b, '[')
	for i := 0; i < n && r.err == nil; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		if r.byte() == 0 {
			b = append(b, "null"...)
			continue
		}
		b = c.elem.leafJSON(b, r)
	}
	return append(b, ']')
}

func (c *column) leafJSON(b []byte, r *reader) []byte {
	switch c.t.Kind {
	case model.KindInt:
		return strconv.AppendInt(b, r.varint(), 10)
	case model.KindFloat:
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.bytes(8)))
		switch {
		case math.IsNaN(f):
			return append(b, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(b, `"Infinity"`...)
		case math.IsInf(f, -1):
			return append(b, `"-Infinity"`...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case model.KindBool:
		return strconv.AppendBool(b, r.byte() == 1)
	case model.KindBytes:
		v := r.bytes(int(r.uvarint()))
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	case model.KindJSON:
		v := r.bytes(int(r.uvarint()))
		if json.Valid(v) {
			return append(b, v...)
		}
		return appendJSONString(b, string(v))
	case model.KindDecimal:
		if c.decText {
			return appendJSONString(b, string(r.bytes(int(r.uvarint()))))
		}
		var u *big.Int
		if c.codec == codecInt64 {
			u = big.NewInt(r.varint())
		} else {
			u = int128ToBig(r.bytes(16))
		}
		// Text, so that no JSON reader rounds it through a double.
		return appendJSONString(b, model.Decimal{Unscaled: u, Scale: c.t.Scale}.String())
	case model.KindDate:
		return time.Unix(r.varint()*86400, 0).UTC().AppendFormat(append(b, '"'), "2006-01-02\"")
	case model.KindTime:
		return appendJSONString(b, formatTime(time.Duration(r.varint())*time.Microsecond))
	case model.KindTimestamp:
		return time.UnixMicro(r.varint()).UTC().AppendFormat(append(b, '"'), "2006-01-02T15:04:05.999999\"")
	case model.KindTimestampTZ:
		return time.UnixMicro(r.varint()).UTC().AppendFormat(append(b, '"'), "2006-01-02T15:04:05.999999Z07:00\"")
	}
	return appendJSONString(b, string(r.bytes(int(r.uvarint()))))
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// formatTime renders a time of day as HH:MM:SS[.ffffff].
func formatTime(d time.Duration) string {
	us := d.Microseconds()
	s := fmt.Sprintf("%02d:%02d:%02d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60)
	if f := us % 1_000_000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	return s
}

// formatInterval renders an interval as CockroachDB and PostgreSQL print it
// by default ("1 year 2 mons 3 days 04:05:06.789"), which DuckDB,
// PostgreSQL and CockroachDB cast back to INTERVAL.
func formatInterval(iv model.Interval) string {
	var parts []string
	unit := func(n int64, one, many string) {
		if n == 0 {
			return
		}
		name := many
		if n == 1 {
			name = one
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, name))
	}
	unit(int64(iv.Months/12), "year", "years")
	unit(int64(iv.Months%12), "mon", "mons")
	unit(int64(iv.Days), "day", "days")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		parts = append(parts, sign+formatTime(time.Duration(us)*time.Microsecond))
	}
	return strings.Join(parts, " ")
}

func formatUUID(u []byte) string {
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
