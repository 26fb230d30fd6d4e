package schemas

import (
	"fmt"
	"strconv"
)

// clipBytes is how much of a decoded string an error may quote: enough to
// recognise it, never a whole value (a record's text may be megabytes).
const clipBytes = 64

// clip quotes at most the first 64 bytes of s, saying how long s is when it
// is cut.
func clip(s string) string {
	if len(s) > clipBytes {
		return fmt.Sprintf("%q...(%d bytes)", s[:clipBytes], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// numErr returns the cause of a strconv error without the text it quotes
// (strconv.NumError renders the whole input).
func numErr(err error) error {
	if ne, ok := err.(*strconv.NumError); ok {
		return ne.Err
	}
	return err
}
