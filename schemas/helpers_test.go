package schemas

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/model"
)

// schemaFile reads a verbatim schema text from testdata.
func schemaFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(b), "\n")
}

// newSeededRegistry starts an in-process schema registry (srfake) holding
// schemas under the given ids and returns it with a Registry client for it.
func newSeededRegistry(t testing.TB, schemas map[int]string, opts ...RegistryOption) (*srfake.Registry, *Registry) {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	for id, s := range schemas {
		fake.SeedSchema(fmt.Sprintf("subject%d-value", id), 1, id, sr.Schema{Schema: s, Type: sr.TypeAvro})
	}
	opts = append([]RegistryOption{WithRetryBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	reg, err := NewRegistry(fake.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return fake, reg
}

// frame prepends the Confluent header for id to the body parts.
func frame(id int, parts ...[]byte) []byte {
	b := []byte{0}
	b = binary.BigEndian.AppendUint32(b, uint32(id))
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// hx parses hex with optional spaces, and 'quoted' ASCII runs.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for len(s) > 0 {
		switch {
		case s[0] == ' ':
			s = s[1:]
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			out = append(out, s[1:1+end]...)
			s = s[end+2:]
		default:
			end := strings.IndexAny(s, " '")
			if end < 0 {
				end = len(s)
			}
			b, err := hex.DecodeString(s[:end])
			if err != nil {
				t.Fatalf("bad hex %q: %v", s[:end], err)
			}
			out = append(out, b...)
			s = s[end:]
		}
	}
	return out
}

// sameValue compares decoded values: Decimals by value, times by instant
// and location, everything else deeply.
func sameValue(a, b any) bool {
	switch av := a.(type) {
	case model.Decimal:
		bv, ok := b.(model.Decimal)
		if !ok || av.Special != bv.Special || av.Scale != bv.Scale || (av.Unscaled == nil) != (bv.Unscaled == nil) {
			return false
		}
		return av.Unscaled == nil || av.Unscaled.Cmp(bv.Unscaled) == 0
	case time.Time:
		bv, ok := b.(time.Time)
		return ok && av.Equal(bv) && av.Location() == bv.Location()
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) || (av == nil) != (bv == nil) {
			return false
		}
		for i := range av {
			if !sameValue(av[i], bv[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func dec(unscaled string, scale int) model.Decimal {
	v, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		panic(unscaled)
	}
	return model.Decimal{Unscaled: v, Scale: scale}
}
