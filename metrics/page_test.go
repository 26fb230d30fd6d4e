package metrics

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/processor"
)

// pageSource is a Source with partitions, for the status page.
type pageSource struct {
	s     processor.Stats
	parts []processor.PartitionStat
}

func (p pageSource) Stats() processor.Stats                    { return p.s }
func (p pageSource) PartitionStats() []processor.PartitionStat { return p.parts }

func TestStatusPageShowsTheMember(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) hlc.Timestamp { return hlc.Timestamp{WallTime: now.Add(-d).UnixNano()} }
	src := pageSource{
		s: processor.Stats{Partitions: 2, Frontier: ago(12 * time.Second), Windows: 41, RowsApplied: 9001, Consumed: 12345,
			Buffered: 777, BufferBytes: 3 << 20, DeadLettersIngest: 2, DeadLettersApply: 1, Skipped: 0, Rebalances: 3,
			LastError: `commit window through 1.0: connection refused <script>`, LastErrorAt: now.Add(-90 * time.Second)},
		parts: []processor.PartitionStat{
			{Topic: "orders", Partition: 0, Applied: ago(12 * time.Second), Resolved: ago(2 * time.Second), NextOffset: 100, HighWatermark: 140},
			{Topic: "orders", Partition: 1, Applied: ago(12 * time.Second), Resolved: ago(40 * time.Second), NextOffset: 90, HighWatermark: 90},
		},
	}
	hist := &history{}
	for i := 0; i < 4; i++ {
		s := src.s
		s.Windows, s.RowsApplied = int64(10*i), int64(1000*i)
		hist.add(s, now.Add(time.Duration(i)*sampleEvery))
	}
	rec := httptest.NewRecorder()
	page(src, PageInfo{Group: "g1", Topics: []string{"orders"}, Sink: "postgres://hw:REDACTED@db/wh", BufferBudget: 12 << 20}, hist).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<meta http-equiv="refresh" content="5">`),
		regexp.MustCompile(`id="group">g1<`),
		regexp.MustCompile(`id="ready" class="ok">ready<`),
		regexp.MustCompile(`id="watermark-age">1[12](\.\d)?s ago<`),
		regexp.MustCompile(`id="windows">41<`),
		regexp.MustCompile(`id="rows">9001<`),
		regexp.MustCompile(`3\.0 MiB of 12\.0 MiB budget \(25\.0%\)`),
		regexp.MustCompile(`id="dead-letters" class="warn">3 \(2 at ingest, 1 at apply\)`),
		regexp.MustCompile(`id="rebalances">3<`),
		// Partition 1 has the oldest resolved timestamp: it holds the frontier back.
		regexp.MustCompile(`<tr class="partition" data-topic="orders" data-partition="0">`),
		regexp.MustCompile(`<tr class="partition behind" data-topic="orders" data-partition="1"`),
		regexp.MustCompile(`<td>40</td>\s*</tr>`), // consumer lag of partition 0
		// Rates from the history: 10 windows and 1000 rows per 5 s.
		regexp.MustCompile(`now 2\.0, peak 2\.0 per second`),
		regexp.MustCompile(`now 200\.0, peak 200\.0 per second`),
		regexp.MustCompile(`<polyline points="[0-9., ]+"/>`),
		// The error is escaped, never markup.
		regexp.MustCompile(`id="last-error" class="bad">1m30s ago: commit window through 1\.0: connection refused &lt;script&gt;`),
	} {
		if !want.MatchString(body) {
			t.Errorf("status page lacks %s", want)
		}
	}
	for _, never := range []string{"<script", "http://", "https://", "src="} {
		if strings.Contains(body, never) {
			t.Errorf("status page contains %q: it must need nothing from outside", never)
		}
	}

	// Not ready, no partitions, no history: the page still renders and says so.
	rec = httptest.NewRecorder()
	page(pageSource{}, PageInfo{}, &history{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	for _, want := range []string{"not ready: waiting for partitions", "no window applied yet", "no partitions owned", "collecting: a point every 5 seconds", `id="last-error" class="muted">none`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("empty status page lacks %q", want)
		}
	}
	rec = httptest.NewRecorder()
	page(pageSource{}, PageInfo{}, &history{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
}

func TestAgeReadsLikeAPerson(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:                         "850ms",
		12340 * time.Millisecond:                       "12.3s",
		200 * time.Second:                              "3m20s",
		5*time.Hour + 2*time.Minute:                    "5h2m",
		12*24*time.Hour + 4*time.Hour + 30*time.Minute: "12d4h",
		-3 * time.Second:                               "-3s",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
}
