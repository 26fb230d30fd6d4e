package schemas

import (
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/highwater-dev/highwater/hlc"
)

// This file reads CockroachDB's envelope = 'enriched' (v25.2+) with
// format = avro. The envelope record is the wrapped one's, named alike, with
// the fields (in this order, avro.go NewEnvelopeRecord):
//
//	before  ["null", <table>_before]   with diff
//	after   ["null", <table>]
//	source  ["null", source]           with enriched_properties = 'source'
//	ts_ns   ["null", "long"]           the changefeed's processing time
//	op      ["null", "string"]         "c", "u" or "d"
//
// With envelope = enriched CockroachDB never writes top-level `updated` or
// `mvcc_timestamp` (encoder_avro.go, EncodeValue): the commit HLC is
// source.ts_hlc, which the source record carries only when the changefeed
// also has `updated` (enriched_source_provider.go, GetAvro); without it
// ts_hlc is null, and without enriched_properties = 'source' there is no
// source at all. ts_ns is processing time, never the commit time
// (changefeed-message-envelopes, "ts_ns"). The source record's fields come
// in Go map order (enriched_source_provider.go builds them ranging over a
// map), so they are found by name.

// EnrichedOp is the `op` field of an enriched envelope.
type EnrichedOp uint8

const (
	// OpNone is a row of an envelope without `op` (wrapped, bare), or a
	// null `op`.
	OpNone EnrichedOp = iota
	// OpCreate is "c": an insert, or a row of an initial scan.
	OpCreate
	// OpUpdate is "u": an update of a row that existed.
	OpUpdate
	// OpDelete is "d": a delete (`after` is null).
	OpDelete
)

// String returns the op as CockroachDB writes it ("c", "u", "d"; "" for
// OpNone).
func (o EnrichedOp) String() string {
	switch o {
	case OpCreate:
		return "c"
	case OpUpdate:
		return "u"
	case OpDelete:
		return "d"
	}
	return ""
}

// ErrEnrichedNoCommitHLC is wrapped by errors for envelope = 'enriched'
// changefeeds whose messages carry no commit timestamp: created without
// enriched_properties = 'source', or without `updated` (source.ts_hlc is
// then null). errors.Is(err, ErrNoUpdated) also holds for it.
var ErrEnrichedNoCommitHLC error = errEnrichedNoCommitHLC{}

type errEnrichedNoCommitHLC struct{}

func (errEnrichedNoCommitHLC) Error() string {
	return "enriched changefeed messages have no commit timestamp (ts_ns is the processing time): create the changefeed WITH envelope = enriched, enriched_properties = 'source', updated, resolved (or with the default envelope = wrapped and updated, resolved)"
}

// Is makes errors.Is(ErrEnrichedNoCommitHLC, ErrNoUpdated) true: both mean
// rows cannot be ordered by their commit time.
func (errEnrichedNoCommitHLC) Is(target error) bool { return target == ErrNoUpdated }

// sourcePlan is the compiled `source` field of an enriched envelope: the
// union layout of ["null", source] and the source record's fields, of
// which ts_hlc (roleUpdated) and mvcc_timestamp (roleMVCC) are read and the
// rest skipped.
type sourcePlan struct {
	nullIdx, valIdx int64
	fields          []envField
	hasHLC          bool
}

// compileSource compiles an enriched envelope's `source` field. A field of
// that name but another shape is not CockroachDB's source record: nil, to
// be skipped like any unknown envelope field.
func compileSource(c *compiler, f *avro.Field) (*sourcePlan, error) {
	nullIdx, valIdx, rec, ok := unionLayout(f.Type(), isRecord)
	if !ok {
		return nil, nil
	}
	sp := &sourcePlan{nullIdx: nullIdx, valIdx: valIdx}
	for _, sf := range deref(rec).(*avro.RecordSchema).Fields() {
		ef := envField{role: roleOther}
		switch sf.Name() {
		case "ts_hlc", "mvcc_timestamp":
			n, v, _, ok := unionLayout(sf.Type(), isString)
			if !ok {
				break // not CockroachDB's: skipped
			}
			ef.nullIdx, ef.valIdx = n, v
			ef.role = roleMVCC
			if sf.Name() == "ts_hlc" {
				ef.role = roleUpdated
				sp.hasHLC = true
			}
		}
		skip, err := c.skip(sf.Type())
		if err != nil {
			return nil, nil // the whole field's skip plan reports it
		}
		weigh(skip)
		ef.skip = skip
		sp.fields = append(sp.fields, ef)
	}
	return sp, nil
}

// compileOp compiles an enriched envelope's `op` field, ["null","string"].
// A field of that name but another shape is not CockroachDB's op: it stays
// roleOther and is skipped.
func compileOp(f *avro.Field, ef *envField) error {
	nullIdx, valIdx, _, ok := unionLayout(f.Type(), isString)
	if !ok {
		return nil
	}
	ef.role, ef.nullIdx, ef.valIdx = roleOp, nullIdx, valIdx
	return nil
}

// enrichedCommitHLC is called for a value schema without a top-level
// `updated`. For an enriched envelope (one with `op`) whose source record
// has ts_hlc it makes that the commit timestamp; otherwise it returns the
// error that refuses the schema.
func (p *valuePlan) enrichedCommitHLC() error {
	enriched := false
	var src *envField
	for i := range p.fields {
		f := &p.fields[i]
		switch {
		case f.role == roleOp:
			enriched = true
		case f.src != nil:
			src = f
		}
	}
	switch {
	case !enriched:
		return ErrNoUpdated
	case src == nil:
		return fmt.Errorf("envelope = enriched without enriched_properties = 'source': %w", ErrEnrichedNoCommitHLC)
	case !src.src.hasHLC:
		return fmt.Errorf("source record has no ts_hlc field: %w", ErrEnrichedNoCommitHLC)
	}
	src.role = roleSource
	return nil
}

// source reads an enriched envelope's `source` field: the commit HLC
// (ts_hlc, which must not be null) and, when mvcc is set, the
// mvcc_timestamp (zero when null or absent). It allocates nothing unless it
// fails.
func (r *reader) source(f *envField, mvcc *hlc.Timestamp) (hlc.Timestamp, error) {
	sp := f.src
	if sp.nullIdx >= 0 {
		idx, err := r.long()
		if err != nil {
			return hlc.Timestamp{}, fmt.Errorf("source: %w", err)
		}
		if idx == sp.nullIdx {
			return hlc.Timestamp{}, fmt.Errorf("source is null: %w", ErrEnrichedNoCommitHLC)
		}
		if idx != sp.valIdx {
			return hlc.Timestamp{}, fmt.Errorf("source: union branch %d out of range", idx)
		}
	}
	var ts hlc.Timestamp
	for i := range sp.fields {
		sf := &sp.fields[i]
		switch {
		case sf.role == roleUpdated:
			if sf.nullIdx >= 0 {
				save := r.i
				idx, err := r.long()
				if err != nil {
					return hlc.Timestamp{}, fmt.Errorf("source.ts_hlc: %w", err)
				}
				if idx == sf.nullIdx {
					return hlc.Timestamp{}, fmt.Errorf("source.ts_hlc is null (changefeed created without updated): %w", ErrEnrichedNoCommitHLC)
				}
				r.i = save
			}
			t, err := r.hlcField(sf, "source.ts_hlc")
			if err != nil {
				return hlc.Timestamp{}, err
			}
			ts = t
		case sf.role == roleMVCC && mvcc != nil:
			t, err := r.optHLC(sf, "source.mvcc_timestamp")
			if err != nil {
				return hlc.Timestamp{}, err
			}
			*mvcc = t
		default:
			if err := r.skip(sf.skip); err != nil {
				return hlc.Timestamp{}, fmt.Errorf("source: %w", err)
			}
		}
	}
	return ts, nil
}

// op reads an enriched envelope's `op` field.
func (r *reader) op(f *envField) (EnrichedOp, error) {
	if f.nullIdx >= 0 {
		idx, err := r.long()
		if err != nil {
			return OpNone, fmt.Errorf("op: %w", err)
		}
		if idx == f.nullIdx {
			return OpNone, nil
		}
		if idx != f.valIdx {
			return OpNone, fmt.Errorf("op: union branch %d out of range", idx)
		}
	}
	b, err := r.bytes()
	if err != nil {
		return OpNone, fmt.Errorf("op: %w", err)
	}
	if len(b) == 1 {
		switch b[0] {
		case 'c':
			return OpCreate, nil
		case 'u':
			return OpUpdate, nil
		case 'd':
			return OpDelete, nil
		}
	}
	return OpNone, fmt.Errorf("op %q is none of \"c\", \"u\", \"d\"", b[:min(len(b), 8)])
}

// checkOp checks that a row's `op` agrees with its `after`: "d" exactly
// when after is null.
func checkOp(row *Row) error {
	switch {
	case row.Op == OpNone:
		return nil
	case row.Op == OpDelete && row.After != nil:
		return errors.New("op is \"d\" but after is not null")
	case row.Op != OpDelete && row.After == nil:
		return fmt.Errorf("op is %q but after is null", row.Op.String())
	}
	return nil
}
