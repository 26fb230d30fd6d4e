package files

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/highwater-dev/highwater/sinks"
)

// TestTableDirectoriesAreMapped: two tables whose escaped names share their
// first 249 bytes, tables named like the writer's own _highwater and _dlq,
// and a table named like another's mapped directory each get a directory
// of their own, recorded in the catalog, across writers.
func TestTableDirectoriesAreMapped(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	long1, long2 := strings.Repeat("n", 300)+"1", strings.Repeat("n", 300)+"2"
	lookalike := dirRule.Hashed(DeadLetterDir, 0) // written before _dlq itself
	sources := []string{long1, long2, internalDir, lookalike, DeadLetterDir, "plain"}
	for round := range 2 { // the second writer finds the directories in the catalog
		w := openDir(t, root, Config{})
		var writes []write
		for i, src := range sources {
			writes = append(writes, write{kv(src), []sinks.Change{ch(sinks.OpInsert, h(int64(round+1)), int64(round), fmt.Sprint(i), int64(i))}})
		}
		tx, err := w.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, wr := range writes {
			if err := tx.Write(ctx, wr.table, wr.changes); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.DeadLetters(ctx, []sinks.DeadLetter{{Group: "g", Topic: "t", Partition: 0, Offset: int64(round), SchemaID: -1, Stage: "ingest", Error: "bad"}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Checkpoint(ctx, []sinks.Checkpoint{cp(0, h(int64(10+round)), int64(round+1))}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		tables, err := w.Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dirs := map[string]string{}
		for _, ti := range tables {
			dirs[ti.Name] = ti.Dir
		}
		owner := map[string]string{}
		db := duck(t)
		for i, src := range sources {
			d, ok := dirs[src]
			switch {
			case !ok:
				t.Fatalf("round %d: table %.20q… not in the catalog (%d entries)", round, src, len(tables))
			case len(d) > 248:
				t.Fatalf("directory of %.20q… is %d bytes", src, len(d))
			case d == internalDir || d == DeadLetterDir:
				t.Fatalf("table %q shares highwater's directory %q", src, d)
			case src == "plain" && d != "plain":
				t.Fatalf("plain is in %q", d)
			}
			if other, ok := owner[d]; ok {
				t.Fatalf("%.20q… and %.20q… share directory %.30q…", src, other, d)
			}
			owner[d] = src
			got := query(t, db, fmt.Sprintf(`SELECT CAST(id AS VARCHAR), name FROM read_parquet('%s/%s/*/*/*.parquet') ORDER BY id`, root, d))
			want := [][]string{}
			for r := 0; r <= round; r++ {
				want = append(want, []string{fmt.Sprint(r), fmt.Sprint(i)})
			}
			eq(t, fmt.Sprintf("round %d rows of %.20q…", round, src), got, want)
		}
		if got, err := w.Checkpoints(ctx, "g"); err != nil || len(got) != 1 || got[0].NextOffset != int64(round+1) {
			t.Fatalf("checkpoints %v, %v", got, err)
		}
		if got := query(t, db, fmt.Sprintf(`SELECT count(*) FROM read_ndjson('%s/%s/*/*/*/*.ndjson')`, root, DeadLetterDir)); got[0][0] != fmt.Sprint(round+1) {
			t.Fatalf("dead letters: %v", got)
		}
	}
}
