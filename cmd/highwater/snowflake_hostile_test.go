package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/sqlident"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/sinks"
	"github.com/highwater-dev/highwater/sinks/files"
)

// hostileTables are source tables whose names try to break out of the
// generated SQL: a newline followed by a statement (CockroachDB's Avro
// names carry it as _u000a_), comment markers, quotes, backslashes, a
// carriage return, Unicode line separators and non-ASCII letters.
func hostileTables() []*model.Table {
	str := model.Type{Kind: model.KindString}
	i64 := model.Type{Kind: model.KindInt}
	return []*model.Table{
		{Name: "evil\nDROP TABLE victims; -- ", Key: []int{0}, Columns: []model.Column{
			{Name: "id\n); DROP TABLE t; --", Type: i64, PrimaryKey: true},
			{Name: "it's", Type: str},
			{Name: `back\slash`, Type: str},
		}},
		{Name: `close */ comment -- dash 'q' "dq" \ // ; $$`, Key: []int{1, 0}, Columns: []model.Column{
			{Name: `"dq"`, Type: str, PrimaryKey: true},
			{Name: "*/--", Type: i64, PrimaryKey: true},
			{Name: "$$ dollar $$", Type: str},
		}},
		{Name: "uni ☃ \u2028 sep \r cr \t tab naïve", Key: []int{0}, Columns: []model.Column{
			{Name: "ключ\u2029", Type: i64, PrimaryKey: true},
			{Name: "x\r\nSELECT 1;", Type: str},
		}},
	}
}

// TestSnowflakeSQLHostileNames generates the SQL for tables and columns
// with hostile names and checks it against testdata/snowflake_hostile.golden
// and, independently of the golden, that it parses as intended: lexed by
// Snowflake's rules (-- and // line comments, /* */ comments, '...' strings
// with backslash escapes, "..." identifiers), it has exactly the token
// structure of the same tables with plain names, so no part of a name ever
// lands outside an identifier, a string literal or a comment.
func TestSnowflakeSQLHostileNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := files.Open(ctx, "file://"+dir, sinks.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := hlc.Timestamp{WallTime: 1659643584586630201}
	for _, tbl := range hostileTables() {
		vals := make([]any, len(tbl.Columns))
		for i, c := range tbl.Columns {
			if c.Type.Kind == model.KindInt {
				vals[i] = int64(i)
			} else {
				vals[i] = "v"
			}
		}
		if err := tx.Write(ctx, tbl, []sinks.Change{{Op: sinks.OpInsert, Updated: at, Values: vals}}); err != nil {
			t.Fatalf("write %q: %v", tbl.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()

	out, err := runArgs(t, "snowflake-sql", "--sink", "file://"+dir, "--stage-url", "s3://lake/cdc")
	if err != nil {
		t.Fatalf("snowflake-sql: %v\n%s", err, out)
	}
	golden := filepath.Join("testdata", "snowflake_hostile.golden")
	if *updateSnowflake {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), want) {
		t.Errorf("snowflake-sql output differs from %s (go test -run TestSnowflakeSQLHostileNames -update-snowflake to accept):\n%s", golden, out)
	}

	// The same tables with plain names: t0, c0_1, ... in the same places.
	fw, err := files.OpenConfig(ctx, mustParse(t, "file://"+dir), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := fw.Tables(ctx)
	fw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(catalog) != len(hostileTables()) {
		t.Fatalf("catalog holds %d tables, want %d", len(catalog), len(hostileTables()))
	}
	var plain []files.TableInfo
	idents := map[string]bool{sinks.UpdatedColumn: true, sinks.OpColumn: true}
	for i, ti := range catalog {
		p := ti
		p.Name = fmt.Sprintf("t%d", i)
		p.Dir = fmt.Sprintf("d%d", i)
		rename := map[string]string{}
		p.Columns = nil
		for j, c := range ti.Columns {
			rename[c.Name] = fmt.Sprintf("c%d_%d", i, j)
			c.Name = rename[c.Name]
			p.Columns = append(p.Columns, c)
			idents[ti.Columns[j].Name] = true
		}
		p.PrimaryKey = nil
		for _, k := range ti.PrimaryKey {
			p.PrimaryKey = append(p.PrimaryKey, rename[k])
		}
		plain = append(plain, p)
		for _, suffix := range []string{"", sinks.ChangesSuffix, "_pipe", sinks.ChangesSuffix + "_stream", "_merge", sinks.AsOfSuffix} {
			idents[ti.Name+suffix] = true
		}
	}
	var b strings.Builder
	if err := writeSnowflakeSQL(&b, snowflakeOptions{stageURL: "s3://lake/cdc", schedule: "1 MINUTE", prefix: "highwater", format: catalog[0].Format}, plain); err != nil {
		t.Fatal(err)
	}
	hostile, err := lexSnowflake(out)
	if err != nil {
		t.Fatalf("the hostile output does not lex: %v\n%s", err, out)
	}
	benign, err := lexSnowflake(b.String())
	if err != nil {
		t.Fatalf("the plain output does not lex: %v", err)
	}
	hs, bs := skeleton(hostile), skeleton(benign)
	if hs != bs {
		t.Fatalf("hostile names change the SQL's structure:\n--- hostile\n%s\n--- plain\n%s", hs, bs)
	}
	// Every identifier is one of the names (or highwater's columns), whole.
	for _, tok := range hostile {
		if tok.kind == tokIdent && !idents[tok.value] {
			t.Errorf("identifier %q is not a table or column name", tok.value)
		}
		if tok.kind == tokComment && strings.ContainsAny(tok.text, "\r\u2028\u2029") {
			t.Errorf("comment %q holds a raw line break", tok.text)
		}
	}
	for name := range idents {
		if !strings.Contains(out, sqlident.Quote(name)) {
			t.Errorf("identifier %s is missing from the output", sqlident.Quote(name))
		}
	}
}

func mustParse(t *testing.T, url string) files.Config {
	t.Helper()
	cfg, err := files.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type tokKind int

const (
	tokWord tokKind = iota
	tokPunct
	tokString
	tokIdent
	tokComment
)

type token struct {
	kind tokKind
	text string // as written
	// value is an identifier's name (quotes undone).
	value string
}

// lexSnowflake splits SQL into tokens by Snowflake's lexical rules.
func lexSnowflake(sql string) ([]token, error) {
	var toks []token
	isWord := func(c byte) bool {
		return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(sql[i:], "--") || strings.HasPrefix(sql[i:], "//"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			toks = append(toks, token{kind: tokComment, text: sql[i : i+end]})
			i += end
		case strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated /* comment at byte %d", i)
			}
			toks = append(toks, token{kind: tokComment, text: sql[i : i+2+end+2]})
			i += 2 + end + 2
		case strings.HasPrefix(sql[i:], "$$"):
			end := strings.Index(sql[i+2:], "$$")
			if end < 0 {
				return nil, fmt.Errorf("unterminated $$ string at byte %d", i)
			}
			toks = append(toks, token{kind: tokString, text: sql[i : i+2+end+2]})
			i += 2 + end + 2
		case c == '\'':
			j := i + 1
			for ; ; j++ {
				if j >= len(sql) {
					return nil, fmt.Errorf("unterminated string at byte %d", i)
				}
				if sql[j] == '\\' {
					j++
					continue
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j++
						continue
					}
					break
				}
				if sql[j] == '\n' || sql[j] == '\r' {
					return nil, fmt.Errorf("string literal at byte %d spans lines", i)
				}
			}
			toks = append(toks, token{kind: tokString, text: sql[i : j+1]})
			i = j + 1
		case c == '"':
			var name strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(sql) {
					return nil, fmt.Errorf("unterminated identifier at byte %d", i)
				}
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						name.WriteByte('"')
						j++
						continue
					}
					break
				}
				name.WriteByte(sql[j])
			}
			toks = append(toks, token{kind: tokIdent, text: sql[i : j+1], value: name.String()})
			i = j + 1
		case isWord(c):
			j := i
			for j < len(sql) && isWord(sql[j]) {
				j++
			}
			toks = append(toks, token{kind: tokWord, text: sql[i:j]})
			i = j
		default:
			toks = append(toks, token{kind: tokPunct, text: string(c)})
			i++
		}
	}
	return toks, nil
}

// skeleton renders tokens with every identifier, string literal and
// comment replaced by a placeholder: the statement structure, one token a
// line, a statement's end marked.
func skeleton(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		switch t.kind {
		case tokIdent:
			b.WriteString("IDENT")
		case tokString:
			b.WriteString("STRING")
		case tokComment:
			b.WriteString("COMMENT")
		default:
			b.WriteString(t.text)
		}
		b.WriteByte(' ')
		if t.text == ";" {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
