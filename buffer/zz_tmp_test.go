package buffer

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/schemas"
)

func TestZZSteady(t *testing.T) {
	if os.Getenv("ZZHEAP") == "" {
		t.Skip()
	}
	dir := t.TempDir()
	s, _ := Open(Options{Dir: dir})
	parts := make([]Partition, 8)
	for i := range parts {
		parts[i] = Partition{"orders", int32(i)}
	}
	const w = 300_000
	start := time.Now()
	for r := 0; r < 12; r++ {
		t0 := time.Now()
		benchFill(t, s, parts, r*w, w, 5000, 0)
		t1 := time.Now()
		through := schemas.HLC{WallTime: 1_700_000_000_000_000_000 + int64((r+1)*w/8-1)*1000}
		if err := s.Trim(context.Background(), parts, through); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		t.Logf("write %v trim %v", t1.Sub(t0), t2.Sub(t1))
		for i := 0; i < 8; i++ {
			if err := s.db.RunValueLogGC(0.5); err != nil {
				break
			}
		}
		t.Logf("round %d: disk %d MiB usage %+v", r, dirSize(dir)>>20, s.Usage())
	}
	t.Logf("%.0f events/s", float64(12*w)/time.Since(start).Seconds())
	s.Close()
}
