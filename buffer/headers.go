package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header is one Kafka record header kept with a buffered event.
type Header struct {
	Key string
	// Value is nil for a null header value, which Kafka distinguishes from
	// an empty one.
	Value []byte
}

// headersMagic starts a payload that carries record headers before the Kafka
// value. A raw changefeed value starts with the Confluent magic byte 0x00
// (anything else is refused at ingest and never buffered), so the two forms
// cannot be confused and buffers written before headers were kept stay
// readable.
const headersMagic = 0x01

// PackHeaders returns the event payload that carries hdrs with value:
// 0x01, uvarint header count, per header (uvarint key length, key, varint
// value length or -1 for null, value), then value. Without headers it
// returns value itself, the form every payload had before headers were
// kept.
func PackHeaders(hdrs []Header, value []byte) []byte {
	if len(hdrs) == 0 {
		return value
	}
	n := 1 + binary.MaxVarintLen64 + len(value)
	for _, h := range hdrs {
		n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
	}
	out := make([]byte, 0, n)
	out = append(out, headersMagic)
	out = binary.AppendUvarint(out, uint64(len(hdrs)))
	for _, h := range hdrs {
		out = binary.AppendUvarint(out, uint64(len(h.Key)))
		out = append(out, h.Key...)
		if h.Value == nil {
			out = binary.AppendVarint(out, -1)
			continue
		}
		out = binary.AppendVarint(out, int64(len(h.Value)))
		out = append(out, h.Value...)
	}
	return append(out, value...)
}

// errBadHeaders is wrapped by SplitHeaders for a payload it cannot read.
var errBadHeaders = errors.New("malformed headers in buffered payload")

// SplitHeaders undoes PackHeaders: it returns the headers (nil when the
// payload has none, as every payload written before headers were kept) and
// the Kafka value. Keys are copied; values and the returned value alias
// payload.
func SplitHeaders(payload []byte) ([]Header, []byte, error) {
	if len(payload) == 0 || payload[0] != headersMagic {
		return nil, payload, nil
	}
	p := payload[1:]
	count, n := binary.Uvarint(p)
	// Each header takes at least two bytes, which bounds the allocation by
	// the payload's length.
	if n <= 0 || count == 0 || count > uint64(len(p)-n)/2 {
		return nil, nil, fmt.Errorf("%w: header count", errBadHeaders)
	}
	p = p[n:]
	hdrs := make([]Header, 0, count)
	for i := uint64(0); i < count; i++ {
		kl, n := binary.Uvarint(p)
		if n <= 0 || kl > uint64(len(p)-n) {
			return nil, nil, fmt.Errorf("%w: key of header %d", errBadHeaders, i)
		}
		key := string(p[n : n+int(kl)])
		p = p[n+int(kl):]
		vl, n := binary.Varint(p)
		if n <= 0 || vl < -1 || vl > int64(len(p)-n) {
			return nil, nil, fmt.Errorf("%w: value of header %d", errBadHeaders, i)
		}
		p = p[n:]
		var val []byte
		if vl >= 0 {
			val = p[:vl:vl]
			p = p[vl:]
		}
		hdrs = append(hdrs, Header{Key: key, Value: val})
	}
	return hdrs, p, nil
}
