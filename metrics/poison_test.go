package metrics

import (
	"testing"

	"github.com/highwater-dev/highwater/processor"
)

func TestPoisonRecordCountersByStage(t *testing.T) {
	src := &statsSource{}
	src.s.Store(&processor.Stats{DeadLettersIngest: 3, DeadLettersApply: 2, Skipped: 5})
	mfs, err := NewRegistry(src).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			if c := m.GetCounter(); c != nil {
				got[name] = c.GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"highwater_dead_letters_total{stage=ingest}": 3,
		"highwater_dead_letters_total{stage=apply}":  2,
		"highwater_records_skipped_total":            5,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
