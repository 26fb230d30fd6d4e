// Package redact is highwater's one redaction of URLs for logs, errors and
// output: a URL's password and the values of query parameters that look
// like secrets become REDACTED. config.RedactURL is its public face; the
// schemas package, which config imports, uses it directly. Clip is the one
// rule for quoting record text in an error: a short prefix, never a whole
// value.
package redact

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// URL returns raw with its password, and query parameters that look like
// secrets, replaced by REDACTED: safe for logs and error messages. A URL
// that does not parse may still hold a password: none of it is shown.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	q := u.Query()
	for k := range q {
		if SecretParam(k) {
			q.Set(k, Mask)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// SecretParam reports whether a URL query parameter's name says it holds
// a secret (password=, sslpassword=, secret_key=, session_token=, ...).
func SecretParam(name string) bool {
	name = strings.ToLower(name)
	for _, word := range []string{"password", "passwd", "pwd", "secret", "token", "credential"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// Secrets returns the secrets raw holds, as written and percent-decoded:
// the password of its user info and the values of secret-looking query
// parameters. It finds them by hand when raw does not parse as a URL
// (an invalid escape, a stray character), since such a URL is still
// echoed by parsers' errors.
func Secrets(raw string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	rest := raw
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	// User info ends at the last @ before the path, query or fragment.
	authority := rest
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if _, pass, ok := strings.Cut(authority[:at], ":"); ok {
			add(pass)
		}
	}
	if _, query, ok := strings.Cut(raw, "?"); ok {
		query, _, _ = strings.Cut(query, "#")
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if dk, err := url.QueryUnescape(k); err == nil {
				k = dk
			}
			if SecretParam(k) {
				add(v)
			}
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// String returns s with each of urls shown redacted (URL) and any secret
// of theirs that remains (a password quoted alone, a URL re-encoded by a
// parser) replaced by REDACTED.
func String(s string, urls ...string) string {
	for _, u := range urls {
		if u == "" {
			continue
		}
		s = strings.ReplaceAll(s, u, URL(u))
		for _, secret := range Secrets(u) {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	return s
}

// Error returns err with its message redacted by String for urls; errors.Is
// and errors.As still see err. It returns nil for nil, and err itself when
// its message holds nothing to redact.
func Error(err error, urls ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := String(msg, urls...); red != msg {
		return &redactedError{err: err, msg: red}
	}
	return err
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// clipBytes is how much of a decoded string an error may quote: enough to
// recognise it, never a whole value (a record's text may be megabytes).
const clipBytes = 64

// Clip quotes at most the first 64 bytes of s, saying how long s is when it
// is cut: the form in which errors may quote record text.
func Clip(s string) string {
	if len(s) > clipBytes {
		return fmt.Sprintf("%q...(%d bytes)", s[:clipBytes], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// NumErr returns the cause of a strconv error without the text it quotes
// (strconv.NumError renders the whole input).
func NumErr(err error) error {
	if ne, ok := err.(*strconv.NumError); ok {
		return ne.Err
	}
	return err
}
