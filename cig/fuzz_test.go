package cig

import (
	"errors"
	"hash/fnv"
	"testing"
)

// FuzzValidate checks that Validate never panics, that whatever it accepts is ten
// bytes of [0-9A-Z] of a known kind, that it is deterministic, and that a
// single-character change of a valid code fails wherever the rules say it must.
// Besides the input itself, each input seeds a generated code of each family, which
// is mutated at a position and to a byte derived from the input.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		"B00012EADB", "918052266A", "Z3B3885F48", "V123456789", "W0000000FF",
		"", "b00012eadb", "B00012EADC", "0000000000", "Z000000000", "ÀB00012EAD", "B00012EAD\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		kind, err := Validate(code)
		kind2, err2 := Validate(code)
		if kind != kind2 || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Validate(%q) is not deterministic: %q, %v then %q, %v", code, kind, err, kind2, err2)
		}
		if err != nil {
			if kind != "" {
				t.Fatalf("Validate(%q) returned kind %q with error %v", code, kind, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate(%q) error %v does not wrap ErrInvalid", code, err)
			}
		} else {
			if len(code) != Length {
				t.Fatalf("Validate accepted %q of %d bytes", code, len(code))
			}
			for i := 0; i < len(code); i++ {
				if c := code[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
					t.Fatalf("Validate accepted %q with byte %#x at position %d", code, c, i+1)
				}
			}
			if kind != family(code[0]) {
				t.Fatalf("Validate(%q) = %q, but its first character selects %q", code, kind, family(code[0]))
			}
			if kind != KindUnverified {
				checkMutations(t, code, alphanumerics)
			}
		}

		// Generated codes: derive the number, mutation position and byte from the input.
		h := fnv.New64a()
		h.Write([]byte(code))
		x := h.Sum64()
		n := uint32(x)
		pos := int(x>>32) % Length
		c := byte(x >> 40)
		letter := byte('A' + (x>>48)%21)
		prefix := "XYZ"[(x>>56)%3]

		v1, err := GenerateSIMOGv1(n%maxSIMOGv1 + 1)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := GenerateSIMOGv2(letter, n&maxSIMOGv2)
		if err != nil {
			t.Fatal(err)
		}
		smart, err := GenerateSmart(prefix, n%maxSmart+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []struct {
			code string
			kind Kind
		}{{v1, KindSIMOGv1}, {v2, KindSIMOGv2}, {smart, KindSmartCIG}} {
			if got, err := Validate(g.code); err != nil || got != g.kind {
				t.Fatalf("Validate(%q) = %q, %v; want %q", g.code, got, err, g.kind)
			}
			if c == g.code[pos] {
				continue
			}
			m := mutate(g.code, pos, c)
			want, certain := expectMutation(g.code, pos, c)
			if !certain {
				continue
			}
			got, err := Validate(m)
			if want == "" && err == nil {
				t.Fatalf("mutation of %q: Validate(%q) = %q, want an error", g.code, m, got)
			}
			if want != "" && (err != nil || got != want) {
				t.Fatalf("mutation of %q: Validate(%q) = %q, %v; want %q", g.code, m, got, err, want)
			}
		}
	})
}
