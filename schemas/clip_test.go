package schemas

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// hostileText is n bytes of printable text that does not repeat, so that
// any 32-byte run of it in an error shows a leak.
func hostileText(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('!' + (i*7+i/91)%90)
	}
	return b
}

// leaks reports whether msg holds more of b than a short prefix: a 32-byte
// run from beyond its first 100 bytes, raw, %q-quoted or in hex.
func leaks(msg string, b []byte) bool {
	tail := b[100:132]
	return strings.Contains(msg, string(tail)) || strings.Contains(msg, hex.EncodeToString(tail))
}

// TestErrorsQuoteOnlyAPrefixOfKeyAndValue: the decoder's errors for huge
// keys and values, and the parsers' errors for huge text, carry at most a
// short prefix of the input.
func TestErrorsQuoteOnlyAPrefixOfKeyAndValue(t *testing.T) {
	d := goldenDecoder(t)
	ctx := context.Background()
	huge := hostileText(70000)
	str := func(b []byte) []byte { return append(binary.AppendVarint(nil, int64(len(b))), b...) }
	goodValue := frame(idFooUpdated, []byte{2}, hx(t, rowBar), hx(t, tsUpdated))
	badUpdated := frame(idFooUpdated, []byte{2}, hx(t, rowBar), []byte{2}, str(huge))
	cases := []struct {
		name       string
		key, value []byte
		row        bool // DecodeRow rather than Extract
	}{
		{"key not a frame", append([]byte{1}, huge...), goodValue, false},
		{"value not a frame", hx(t, goldenKey), append([]byte{7}, huge...), false},
		{"value of an unknown id", hx(t, goldenKey), frame(idUnknownInFixture, huge), false},
		{"updated not an HLC", hx(t, goldenKey), badUpdated, false},
		{"updated not an HLC, row", hx(t, goldenKey), badUpdated, true},
		{"trailing key bytes", append(hx(t, goldenKey), huge...), goodValue, true},
		{"key body garbage", frame(idFooKey, huge), goodValue, true},
		{"trailing value bytes", hx(t, goldenKey), append(goodValue, huge...), true},
	}
	for _, c := range cases {
		var err error
		if c.row {
			_, err = d.DecodeRow(ctx, c.key, c.value)
		} else {
			_, err = d.Extract(ctx, "t", 0, 1, c.key, c.value)
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if leaks(err.Error(), huge) || len(err.Error()) > 300 {
			t.Errorf("%s: the error carries more than a prefix (%d bytes): %.300s", c.name, len(err.Error()), err)
		}
		if c.name == "updated not an HLC" && !strings.Contains(err.Error(), "parse HLC") {
			t.Errorf("%s: %v, want the HLC parser's error (the case tests its quoting)", c.name, err)
		}
	}
	if _, err := d.DecodeRow(ctx, hx(t, goldenKey), goodValue); err != nil {
		t.Fatalf("the well-formed value the cases build on: %v", err)
	}
	digits := strings.Repeat("9", 70000)
	for name, err := range map[string]error{
		"HLC digits":   func() error { _, err := hlc.Parse(digits); return err }(),
		"HLC text":     func() error { _, err := hlc.Parse(string(huge)); return err }(),
		"interval":     func() error { _, err := model.ParseInterval("P" + string(huge)); return err }(),
		"decimal text": func() error { r := reader{b: str(huge)}; _, err := r.value(&node{op: opDecimalSpecial}); return err }(),
	} {
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("%s: error of %d bytes: %.300v", name, len(errString(err)), err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
