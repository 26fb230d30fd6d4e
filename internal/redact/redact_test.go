package redact

import (
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

// TestRedactionHidesEverySecretOfAURL covers URLs that parse and URLs that
// do not (an invalid port, a bad escape), passwords percent-encoded, and
// secret-looking query parameters; the redacted text keeps the rest.
func TestRedactionHidesEverySecretOfAURL(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		secrets []string
		keep    string
	}{
		{"postgres://hw:pa%24s-1@db:5432/wh?sslmode=disable", []string{"pa%24s-1", "pa$s-1"}, "db:5432"},
		{"postgres://hw:pass-2@db:notaport/wh", []string{"pass-2"}, ""},
		{"duckdb://hw:pass-3@%zz/x.duckdb", []string{"pass-3"}, ""},
		{"s3://AKIA:pass-4@bucket/p?secret_key=pass-5&region=eu", []string{"pass-4", "pass-5"}, "region=eu"},
		{"http://u:p@ss-6@registry:8081", []string{"p@ss-6"}, "registry:8081"},
		{"file:///d?session_token=tok%2F7&format=parquet", []string{"tok%2F7", "tok/7"}, "format=parquet"},
	} {
		// A parser's error quotes the URL; the message is redacted whole.
		_, perr := url.Parse(tc.raw)
		msg := "open " + tc.raw + ": failed"
		if perr != nil {
			msg = perr.Error()
		}
		err := Error(errors.Join(errors.New(msg), io.EOF), tc.raw)
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s: errors.Is lost the wrapped error", tc.raw)
		}
		for _, out := range []string{URL(tc.raw), err.Error(), String("password "+tc.secrets[0]+" in "+tc.raw, tc.raw)} {
			for _, s := range tc.secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s: %q still holds %q", tc.raw, out, s)
				}
			}
		}
		if tc.keep != "" && !strings.Contains(URL(tc.raw), tc.keep) {
			t.Errorf("URL(%s) = %q lost %q", tc.raw, URL(tc.raw), tc.keep)
		}
	}
	if err := Error(io.EOF, "postgres://hw:x@db/wh"); err != io.EOF {
		t.Errorf("an error without secrets is wrapped: %v", err)
	}
}
