package simulator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/model"
)

// AllTypesEnum is the ENUM type AllTypesTable uses.
const AllTypesEnum = "status"

// AllTypesTable returns a table with a column of every type the simulator
// supports, plus names that need escaping, for round-trip tests. It declares
// its ENUM type itself.
func AllTypesTable(name string) TableDef {
	return TableDef{
		Name: name,
		Columns: []ColumnDef{
			{Name: "id", Type: "INT8"},
			{Name: "i4", Type: "INT4"},
			{Name: "i2", Type: "INT2"},
			{Name: "f8", Type: "FLOAT8"},
			{Name: "f4", Type: "FLOAT4"},
			{Name: "b", Type: "BOOL"},
			{Name: "s", Type: "STRING", NotNull: true, Default: "'none'"},
			{Name: "sc", Type: "STRING COLLATE de"},
			{Name: "by", Type: "BYTES"},
			{Name: "d", Type: "DECIMAL(12,3)"},
			{Name: "d0", Type: "DECIMAL(10,0)"},
			{Name: "dt", Type: "DATE"},
			{Name: "tm", Type: "TIME"},
			{Name: "ts", Type: "TIMESTAMP"},
			{Name: "tstz", Type: "TIMESTAMPTZ"},
			{Name: "u", Type: "UUID"},
			{Name: "j", Type: "JSONB"},
			{Name: "iv", Type: "INTERVAL"},
			{Name: "ip", Type: "INET"},
			{Name: "ttz", Type: "TIMETZ"},
			{Name: "bt", Type: "BIT(12)"},
			{Name: "vb", Type: "VARBIT"},
			{Name: "st", Type: AllTypesEnum},
			{Name: "ia", Type: "INT8[]"},
			{Name: "sa", Type: "STRING[]"},
			{Name: "da", Type: "DECIMAL(6,2)[]"},
			{Name: "select", Type: "STRING"},
			{Name: "order items", Type: "INT8"},
			{Name: "☃", Type: "STRING"},
		},
		PrimaryKey: []string{"id"},
		Enums:      map[string][]string{AllTypesEnum: {"open", "closed", "on hold"}},
	}
}

// RandomValue returns a random non-NULL value of the CockroachDB type
// sqlType, in the Go type Upsert accepts and the oracle reports. ENUM types
// are unknown here; use a Sim's tables for those.
func RandomValue(rng *rand.Rand, sqlType string) (any, error) {
	t, err := parseType(sqlType, nil)
	if err != nil {
		return nil, err
	}
	return randomFor(rng, t), nil
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-'\"\\/<>&"

var unicodeBits = []string{"é", "ß", "☃", "🍦", "日本", "\n", "\t"}

func randomString(rng *rand.Rand, max int) string {
	n := rng.Intn(max + 1)
	b := make([]byte, 0, n+8)
	for i := 0; i < n; i++ {
		r := rng.Int63()
		if r&15 == 0 {
			b = append(b, unicodeBits[(r>>4)%int64(len(unicodeBits))]...)
			continue
		}
		b = append(b, letters[(r>>4)%int64(len(letters))])
	}
	return string(b)
}

func randomUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Intn(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var (
	minTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
)

// randomFor returns a random canonical value of t.
func randomFor(rng *rand.Rand, t *colType) any {
	switch t.fam {
	case famInt:
		var n int64
		if shift := 1 + rng.Intn(t.width-1); shift == 63 {
			n = rng.Int63()
		} else {
			n = rng.Int63n(int64(1) << uint(shift))
		}
		if rng.Intn(4) == 0 {
			n = -n
		}
		return n
	case famFloat:
		v, _ := t.normalize(rng.NormFloat64() * float64(int64(1)<<uint(rng.Intn(40))))
		return v
	case famBool:
		return rng.Intn(2) == 1
	case famString, famCollated:
		max := 24
		if t.width > 0 && t.width < max {
			max = t.width
		}
		return randomString(rng, max)
	case famBytes:
		b := make([]byte, rng.Intn(17))
		for i := range b {
			b[i] = byte(rng.Intn(256))
		}
		return b
	case famDecimal:
		if rng.Intn(64) == 0 {
			return model.Decimal{Special: []string{"NaN", "Infinity", "-Infinity"}[rng.Intn(3)]}
		}
		digits := 1 + rng.Intn(t.prec)
		var u *big.Int
		if digits <= 18 {
			u = big.NewInt(rng.Int63n(pow10(digits).Int64()))
		} else {
			u = new(big.Int).Rand(rng, pow10(digits))
		}
		if rng.Intn(3) == 0 {
			u.Neg(u)
		}
		return model.Decimal{Unscaled: u, Scale: t.scale}
	case famDate:
		days := rng.Int63n(200*365) - 70*365
		return time.Unix(days*86400, 0).UTC()
	case famTime:
		return time.Duration(rng.Int63n(int64(24*time.Hour/time.Microsecond))) * time.Microsecond
	case famTimestamp, famTimestampTZ:
		return time.UnixMicro(minTime + rng.Int63n(maxTime-minTime)).UTC()
	case famUUID:
		return randomUUID(rng)
	case famJSON:
		return randomJSON(rng)
	case famInterval:
		iv := model.Interval{Months: int32(rng.Intn(40)), Days: int32(rng.Intn(60)), Micros: rng.Int63n(1e11)}
		if rng.Intn(4) == 0 {
			iv.Micros = -iv.Micros
		}
		if rng.Intn(3) == 0 {
			iv.Micros -= iv.Micros % 1e6 // whole seconds
		}
		return iv
	case famINet:
		if rng.Intn(4) == 0 {
			return fmt.Sprintf("2001:db8::%x", rng.Intn(1<<16))
		}
		ip := fmt.Sprintf("%d.%d.%d.%d", rng.Intn(256), rng.Intn(256), rng.Intn(256), rng.Intn(256))
		if rng.Intn(2) == 0 {
			return fmt.Sprintf("%s/%d", ip, 8+rng.Intn(24))
		}
		return ip
	case famTimeTZ:
		off := rng.Intn(25) - 12
		sign := "+"
		if off < 0 {
			sign, off = "-", -off
		}
		return fmt.Sprintf("%02d:%02d:%02d%s%02d", rng.Intn(24), rng.Intn(60), rng.Intn(60), sign, off)
	case famBit, famVarbit:
		n := t.width
		if t.fam == famVarbit {
			max := 130
			if t.width > 0 {
				max = t.width
			}
			n = rng.Intn(max + 1)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.Intn(2))
		}
		return string(b)
	case famEnum:
		return t.labels[rng.Intn(len(t.labels))]
	case famArray:
		out := make([]any, rng.Intn(5))
		for i := range out {
			if rng.Intn(8) != 0 {
				out[i] = randomFor(rng, t.elem)
			}
		}
		return out
	}
	return nil
}

func randomJSON(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString(`{"id": `)
	fmt.Fprintf(&b, "%d", rng.Intn(1000))
	if rng.Intn(2) == 0 {
		b.WriteString(`, "name": `)
		writeJSONString(&b, randomString(rng, 8))
	}
	if rng.Intn(2) == 0 {
		fmt.Fprintf(&b, `, "tags": [%d, %d, null, true]`, rng.Intn(10), rng.Intn(10))
	}
	b.WriteString("}")
	s, _ := canonicalJSON(b.String()) // built valid above
	return s
}

// keyValue derives the j-th key column value of key number idx, so that a
// workload addresses a stable pool of keys.
func keyValue(t *colType, idx, j int) any {
	var v any
	switch t.fam {
	case famInt:
		n := int64(idx)
		if t.width < 64 {
			n %= int64(1) << uint(t.width-1)
		}
		v = n
	case famFloat:
		v = float64(idx) + 0.5
	case famBool:
		v = idx%2 == 1
	case famBytes:
		v = []byte(fmt.Sprintf("k%06d", idx))
	case famDecimal:
		v = model.Decimal{Unscaled: new(big.Int).Mul(big.NewInt(int64(idx)), pow10(t.scale)), Scale: t.scale}
	case famDate:
		v = time.Unix(int64(idx)*86400, 0).UTC()
	case famTime:
		v = time.Duration(idx%86400) * time.Second
	case famTimestamp, famTimestampTZ:
		v = time.Unix(1600000000+int64(idx), 0).UTC()
	case famUUID:
		v = fmt.Sprintf("00000000-0000-4000-8000-%012x", idx)
	case famInterval:
		v = model.Interval{Micros: int64(idx) * 1e6}
	case famINet:
		v = fmt.Sprintf("10.%d.%d.%d", idx>>16&255, idx>>8&255, idx&255)
	case famBit, famVarbit:
		w := t.width
		if w == 0 {
			w = 32
		}
		b := make([]byte, w)
		for i := range b {
			b[w-1-i] = '0' + byte(idx>>uint(i%63)&1)
		}
		v = string(b)
	case famEnum:
		v = t.labels[idx%len(t.labels)]
	default:
		v = fmt.Sprintf("k%06d", idx)
	}
	nv, err := t.normalize(v)
	if err != nil {
		return fmt.Sprintf("k%06d", idx) // unreachable for the types above
	}
	return nv
}

// Workload is a random transactional workload over a Sim's tables.
type Workload struct {
	// Txns is the number of transactions.
	Txns int
	// KeysPerTable is the size of each table's key pool (default 1000).
	KeysPerTable int
	// RowsPerTxn is the number of writes per transaction (default 1).
	RowsPerTxn int
	// DeleteProb is the probability that a write is a delete.
	DeleteProb float64
	// NullProb is the probability that a nullable column is NULL (default 0.1).
	NullProb float64
	// ResolveEvery sends resolved messages every that many transactions
	// (0: only at the end). Run always ends with a Resolve.
	ResolveEvery int
	// RestartEvery restarts the changefeed every that many transactions
	// from the second-to-last resolved HLC (0: never).
	RestartEvery int
	// GapProb is Restart's gap probability.
	GapProb float64
	// Tables restricts the workload to these tables (default all).
	Tables []string
}

func (w *Workload) defaults() error {
	if w.Txns < 0 || w.KeysPerTable < 0 || w.RowsPerTxn < 0 || w.ResolveEvery < 0 || w.RestartEvery < 0 {
		return errors.New("simulator: negative workload size")
	}
	if w.KeysPerTable == 0 {
		w.KeysPerTable = 1000
	}
	if w.RowsPerTxn == 0 {
		w.RowsPerTxn = 1
	}
	if w.NullProb == 0 {
		w.NullProb = 0.1
	}
	return nil
}

// Run executes w: random upserts (random values of every column type) and
// deletes over a pool of keys, Resolve every ResolveEvery transactions,
// optional restarts, and a final Resolve.
func (s *Sim) Run(ctx context.Context, w Workload) error {
	if err := w.defaults(); err != nil {
		return err
	}
	tables := s.declared
	if len(w.Tables) > 0 {
		tables = nil
		for _, name := range w.Tables {
			t, err := s.table(name)
			if err != nil {
				return err
			}
			tables = append(tables, t)
		}
	}
	var resolved []hlc.Timestamp
	for i := 0; i < w.Txns; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := s.Txn(ctx, func(tx *Txn) error {
			for r := 0; r < w.RowsPerTxn; r++ {
				t := tables[s.rng.Intn(len(tables))]
				if err := tx.randomWrite(t, &w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := s.afterTxn(ctx, i, &w, &resolved); err != nil {
			return err
		}
	}
	_, err := s.Resolve(ctx)
	s.log.Debug("workload done", zap.Int("txns", w.Txns), zap.Int64("produced", s.Produced()))
	return err
}

// randomWrite adds one random upsert or delete of t to tx. It runs inside
// Txn, so the Sim's lock is held.
func (tx *Txn) randomWrite(t *table, w *Workload) error {
	s := tx.s
	sch := t.cur()
	idx := s.rng.Intn(w.KeysPerTable)
	key := make([]any, len(sch.key))
	for j, k := range sch.key {
		key[j] = keyValue(sch.cols[k].typ, idx, j)
	}
	if s.rng.Float64() < w.DeleteProb {
		return tx.add(t, key, nil)
	}
	vals := make([]any, len(sch.cols))
	for j, k := range sch.key {
		vals[k] = key[j]
	}
	for i, c := range sch.cols {
		if vals[i] != nil {
			continue
		}
		if !c.notNull && s.rng.Float64() < w.NullProb {
			continue
		}
		vals[i] = randomFor(s.rng, c.typ)
	}
	s.headersRoundTrip(sch, vals) // headers.go
	return tx.add(t, key, vals)
}

// afterTxn follows a workload's i-th transaction with its resolved and
// restart cadence; resolved collects the resolved timestamps sent, since a
// restart re-emits from the second-to-last one.
func (s *Sim) afterTxn(ctx context.Context, i int, w *Workload, resolved *[]hlc.Timestamp) error {
	if w.ResolveEvery > 0 && (i+1)%w.ResolveEvery == 0 {
		ts, err := s.Resolve(ctx)
		if err != nil {
			return err
		}
		*resolved = append(*resolved, ts)
	}
	if w.RestartEvery > 0 && (i+1)%w.RestartEvery == 0 {
		var from hlc.Timestamp
		if n := len(*resolved); n >= 2 {
			from = (*resolved)[n-2]
		}
		return s.Restart(ctx, from, w.GapProb)
	}
	return nil
}
