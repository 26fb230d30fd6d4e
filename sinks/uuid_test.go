package sinks

import (
	"strings"
	"testing"
)

func TestParseUUID(t *testing.T) {
	want := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"canonical, as CockroachDB sends it", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", true},
		{"upper case", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", true},
		{"mixed case", "6Ba7b810-9dAd-11d1-80B4-00c04fd430C8", true},
		{"32 digits", "6ba7b8109dad11d180b400c04fd430c8", false},
		{"braces", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", false},
		{"braces, 32 digits", "{6ba7b8109dad11d180b400c04fd430c8}", false},
		{"urn prefix", "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", false},
		{"leading space", " 6ba7b810-9dad-11d1-80b4-00c04fd430c8", false},
		{"hyphens moved", "6ba7b8109-dad-11d1-80b4-00c04fd430c8", false},
		{"hyphen for a digit", "6ba7b810-9dad-11d1-80b4-00c04fd430-8", false},
		{"non-hex digit", "6ba7b810-9dad-11d1-80b4-00c04fd430cg", false},
		{"one short", "6ba7b810-9dad-11d1-80b4-00c04fd430c", false},
		{"one long", "6ba7b810-9dad-11d1-80b4-00c04fd430c80", false},
		{"empty", "", false},
		{"NUL", "6ba7b810-9dad-11d1-80b4-00c04fd430c\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUUID(tc.in)
			if tc.ok {
				if err != nil || got != want {
					t.Fatalf("ParseUUID(%q) = %x, %v; want %x", tc.in, got, err, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "invalid UUID") {
				t.Fatalf("ParseUUID(%q) = %x, %v; want an invalid UUID error", tc.in, got, err)
			}
		})
	}
	// An error quotes at most 64 bytes of the value.
	_, err := ParseUUID(strings.Repeat("x", 1000))
	if err == nil || len(err.Error()) > 120 {
		t.Fatalf("error for a 1000-byte value: %v", err)
	}
}

func TestParseUUIDAllocatesNothing(t *testing.T) {
	s := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseUUID(s) }); n != 0 {
		t.Fatalf("ParseUUID allocates %v times", n)
	}
}
