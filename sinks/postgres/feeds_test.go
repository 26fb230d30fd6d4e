package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/highwater-dev/highwater/sinks"
)

// TestFeedsWithoutCreatePrivilege: a database prepared by an older
// highwater (no feeds table) opens for a role without CREATE, which runs on
// without recording the feeds, as it runs without time-travel functions.
func TestFeedsWithoutCreatePrivilege(t *testing.T) {
	ctx := context.Background()
	url := server.CreateDB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	role := "feeds_" + db
	execSQL(t, url, fmt.Sprintf(`CREATE ROLE %s LOGIN`, role))
	t.Cleanup(func() {
		_ = server.Exec(ctx, db, fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %s`, role, role))
	})
	openWriter(t, url, sinks.Options{}).Close()
	execSQL(t, url, `DROP VIEW highwater_feed_watermark; DROP TABLE highwater_feeds; REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	execSQL(t, url, fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s`, role))
	r, err := Open(ctx, server.URLAs(role, db), sinks.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open without CREATE on a database without the feeds table: %v", err)
	}
	defer r.Close()
	if err := r.RecordFeeds(ctx, "g", "shared", []sinks.FeedTopic{{Topic: "t", Feed: "default"}}); err != nil {
		t.Fatalf("RecordFeeds without the feeds table: %v", err)
	}
	if got := query(t, url, `SELECT count(*) FROM pg_class WHERE relname = 'highwater_feeds'`); len(got) != 1 || got[0][0] != "0" {
		t.Fatalf("the feeds table was created without CREATE: %v", got)
	}
}
