package buffer

import (
	"bytes"
	"errors"
	"testing"
)

// TestHeadersRoundTripAndOldPayloads checks that headers packed with a value
// come back exactly (null and empty values apart, order and duplicates
// kept), that a payload without headers is the value itself, and that a raw
// Confluent value, as every buffer written before headers were kept holds,
// reads as a value without headers.
func TestHeadersRoundTripAndOldPayloads(t *testing.T) {
	value := []byte{0x00, 0, 0, 0, 7, 0x02, 0x04}
	hdrs := []Header{{Key: "trace_id", Value: []byte("abc123")}, {Key: "empty", Value: []byte{}},
		{Key: "null", Value: nil}, {Key: "", Value: []byte("x")}, {Key: "trace_id", Value: []byte("again")}}
	packed := PackHeaders(hdrs, value)
	if packed[0] != headersMagic {
		t.Fatalf("packed payload starts with %#x", packed[0])
	}
	got, v, err := SplitHeaders(packed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v, value) {
		t.Fatalf("value %x, want %x", v, value)
	}
	if len(got) != len(hdrs) {
		t.Fatalf("%d headers, want %d", len(got), len(hdrs))
	}
	for i := range hdrs {
		if got[i].Key != hdrs[i].Key || !bytes.Equal(got[i].Value, hdrs[i].Value) || (got[i].Value == nil) != (hdrs[i].Value == nil) {
			t.Errorf("header %d: %q=%q (nil %v), want %q=%q (nil %v)", i, got[i].Key, got[i].Value, got[i].Value == nil,
				hdrs[i].Key, hdrs[i].Value, hdrs[i].Value == nil)
		}
	}

	if p := PackHeaders(nil, value); !bytes.Equal(p, value) {
		t.Fatalf("no headers: payload %x, want the value %x", p, value)
	}
	for _, old := range [][]byte{value, {}, nil} {
		got, v, err := SplitHeaders(old)
		if err != nil || got != nil || !bytes.Equal(v, old) {
			t.Errorf("old payload %x: headers %v, value %x, err %v", old, got, v, err)
		}
	}
}

// TestSplitHeadersRefusesDamage checks that every truncation of a packed
// payload, and a header count no payload could hold, is an error rather
// than a panic or a huge allocation.
func TestSplitHeadersRefusesDamage(t *testing.T) {
	packed := PackHeaders([]Header{{Key: "k", Value: []byte("value")}, {Key: "n", Value: nil}}, nil)
	for n := 1; n < len(packed); n++ {
		if _, _, err := SplitHeaders(packed[:n]); !errors.Is(err, errBadHeaders) {
			t.Errorf("payload cut to %d of %d bytes: err %v", n, len(packed), err)
		}
	}
	huge := []byte{headersMagic, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}
	if _, _, err := SplitHeaders(huge); !errors.Is(err, errBadHeaders) {
		t.Errorf("count 2^32-1 in 8 bytes: err %v", err)
	}
}
