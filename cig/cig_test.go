package cig

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// examples are the published codes that pass, from DOMAIN.md and ANAC's repository.
var examples = []struct {
	code string
	kind Kind
}{
	{"B00012EADB", KindSIMOGv2}, // ANAC's own test CIG
	{"918052266A", KindSIMOGv1},
	{"Z3B3885F48", KindSmartCIG},
}

// family names the family a first character selects, or "" if none.
func family(first byte) Kind {
	switch {
	case first >= '0' && first <= '9':
		return KindSIMOGv1
	case first >= 'A' && first <= 'U':
		return KindSIMOGv2
	case first == 'V' || first == 'W':
		return KindUnverified
	case first == 'X' || first == 'Y' || first == 'Z':
		return KindSmartCIG
	}
	return ""
}

// expectMutation says what Validate must return for orig, a valid code with a check
// rule, once the byte at index pos is replaced by c (c != orig[pos]). want is the kind
// the mutation must have, or "" if it must fail. certain is false when the outcome
// depends on the numbers and not on the rules: the first character moved the code
// into another checked family, where its digits match the other check by chance
// (about 1 in 4091 or 1 in 251).
//
// What follows from the published rules alone:
//   - a change at positions 2-10, or a change of the first character within SIMOG v1
//     or within SIMOG v2/PCP, always fails: 4091 and 251 are primes that share no
//     factor with 211, with the digit weights 10^k and 16^k, or with a change of at
//     most 20 in ord(letter);
//   - the Smart CIG letter is not part of its check, so X, Y and Z are interchangeable;
//   - V or W in front of nine hex digits is accepted as KindUnverified.
func expectMutation(orig string, pos int, c byte) (want Kind, certain bool) {
	if pos != 0 {
		return "", true
	}
	from, to := family(orig[0]), family(c)
	switch {
	case to == "":
		return "", true
	case to == KindUnverified:
		if allHex(orig[1:]) {
			return KindUnverified, true
		}
		return "", true
	case from == KindSmartCIG && to == KindSmartCIG:
		return KindSmartCIG, true
	case from == to:
		return "", true
	default:
		return "", false
	}
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func mutate(code string, pos int, c byte) string {
	b := []byte(code)
	b[pos] = c
	return string(b)
}

func TestValidateValid(t *testing.T) {
	tests := []struct {
		name string
		code string
		want Kind
	}{
		{"ANAC test CIG SIMOG v2", "B00012EADB", KindSIMOGv2},
		{"example SIMOG v1", "918052266A", KindSIMOGv1},
		{"example Smart CIG", "Z3B3885F48", KindSmartCIG},
		{"SIMOG v1 smallest number", "0000001" + fmt.Sprintf("%03X", 211), KindSIMOGv1},
		{"SIMOG v1 check with leading zero", "0000019" + fmt.Sprintf("%03X", 19*211%4091), KindSIMOGv1},
		{"SIMOG v2 all-zero number is allowed", "A000000" + fmt.Sprintf("%03X", 1*211), KindSIMOGv2},
		{"PCP letter U", "U000000" + fmt.Sprintf("%03X", 21*211%4091), KindSIMOGv2},
		{"Smart CIG X prefix shares Z's check", "X3B3885F48", KindSmartCIG},
		{"Smart CIG Y prefix shares Z's check", "Y3B3885F48", KindSmartCIG},
		{"V prefix accepted unverified", "V123456789", KindUnverified},
		{"W prefix accepted unverified", "WABCDEF012", KindUnverified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Validate(tt.code)
			if err != nil {
				t.Fatalf("Validate(%q) error: %v", tt.code, err)
			}
			if got != tt.want {
				t.Errorf("Validate(%q) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestValidateInvalid(t *testing.T) {
	tests := []struct {
		name string
		code string
		want string // a fragment of the error message
	}{
		{"empty string", "", "empty"},
		{"too short", "B00012EAD", "has 9 characters; a CIG has exactly 10"},
		{"too long", "B00012EADBB", "has 11 characters"},
		{"much too long", strings.Repeat("A", 1000), "has 1000 characters"},
		{"leading space not trimmed", " B00012EAD", "position 1 is ' '"},
		{"trailing newline not trimmed", "B00012EAD\n", `position 10 is byte 0x0A`},
		{"lower-case code", "b00012eadb", "lower-case 'b'; CIGs are upper-case"},
		{"lower-case check digit", "B00012EADb", "position 10 is lower-case 'b'; CIGs are upper-case"},
		{"lower-case smart prefix", "z3B3885F48", "position 1 is lower-case 'z'"},
		{"letter G in hex position", "B00012GADB", "position 7 is 'G'; expected a hex digit"},
		{"letter in SIMOG v1 number", "9180A2266A", "position 5 is 'A'; a CIG that starts with a digit (SIMOG v1) has 7 decimal digits"},
		{"non-hex SIMOG v1 check", "918052266G", "position 10 is 'G'; expected a hex digit"},
		{"non-hex V code", "V12345678Z", "position 10 is 'Z'; expected a hex digit"},
		{"punctuation", "B0001-EADB", "position 6 is '-'; a CIG uses only digits 0-9 and letters A-Z"},
		{"symbol first", "#00012EADB", "position 1 is '#'; a CIG uses only digits 0-9 and letters A-Z"},
		{"NUL byte", "B0001\x00EADB", "position 6 is byte 0x00"},
		{"SIMOG v1 all-zero number", "0000000000", "0000000 is never issued"},
		{"Smart CIG all-zero number", "Z000000000", "0000000 is never issued"},
		{"SIMOG v2 wrong check", "B00012EADC", "wrong SIMOG v2/PCP check digits: expected ADB, got ADC"},
		{"SIMOG v1 wrong check", "918052266B", "wrong SIMOG v1 check digits: expected 66A, got 66B"},
		{"Smart CIG wrong check", "Z3C3885F48", "wrong Smart CIG check digits: expected 3B, got 3C"},
		{"non-ASCII letter", "B00012EADÈ", "position 10 is 'È', which is not ASCII"},
		{"non-ASCII first", "ÀB00012EAD", "position 1 is 'À', which is not ASCII"},
		{"non-ASCII 11 characters", "B00012EADBÈ", "has 11 characters"},
		{"invalid UTF-8 in 10 bytes", "B00012EAD\xff", "position 10 is byte 0xFF"},
		{"invalid UTF-8 among multibyte", "B00012EA\xffÈ", "position 9 is not valid UTF-8 (byte 0xFF)"},
		{"replacement character", "B00012EAD\uFFFD", "position 10 is '\uFFFD', which is not ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, err := Validate(tt.code)
			if err == nil {
				t.Fatalf("Validate(%q) = %q, want an error", tt.code, kind)
			}
			if kind != "" {
				t.Errorf("Validate(%q) returned kind %q with error", tt.code, kind)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate(%q) error %v does not wrap ErrInvalid", tt.code, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate(%q) error %q does not contain %q", tt.code, err, tt.want)
			}
		})
	}
}

func TestErrorMessageTruncatesLongInput(t *testing.T) {
	_, err := Validate(strings.Repeat("9", 5000))
	if err == nil {
		t.Fatal("want an error")
	}
	if len(err.Error()) > 200 {
		t.Errorf("error message is %d bytes long: %.80q...", len(err.Error()), err)
	}
}

// TestExampleMutations changes each character of each published example to every
// other byte value (and a few multi-byte characters) and checks that the change is
// rejected, except where the published rules themselves accept it (see expectMutation).
// For these three codes even the first-character changes into another checked family
// fail, so they are asserted to fail too.
func TestExampleMutations(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.code, func(t *testing.T) {
			if got, err := Validate(ex.code); err != nil || got != ex.kind {
				t.Fatalf("Validate(%q) = %q, %v; want %q", ex.code, got, err, ex.kind)
			}
			for pos := 0; pos < Length; pos++ {
				t.Run(fmt.Sprintf("position %d", pos+1), func(t *testing.T) {
					for c := 0; c < 256; c++ {
						if byte(c) == ex.code[pos] {
							continue
						}
						m := mutate(ex.code, pos, byte(c))
						want, _ := expectMutation(ex.code, pos, byte(c))
						got, err := Validate(m)
						if want == "" {
							if err == nil {
								t.Errorf("Validate(%q) = %q, want an error", m, got)
							} else if !errors.Is(err, ErrInvalid) {
								t.Errorf("Validate(%q) error %v does not wrap ErrInvalid", m, err)
							}
						} else if err != nil || got != want {
							t.Errorf("Validate(%q) = %q, %v; the rules accept it as %q", m, got, err, want)
						}
					}
					for _, r := range []string{"È", "€", "\uFFFD", "\xc3"} {
						m := ex.code[:pos] + r + ex.code[pos+1:]
						if got, err := Validate(m); err == nil {
							t.Errorf("Validate(%q) = %q, want an error", m, got)
						}
					}
				})
			}
		})
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	numbers := []uint32{0, 1, 2, 9, 10, 211, 4090, 4091, 4092, 0xFFFF, 1234567, 9999999, 0xFFFFFF, 0xFFFFFFF}
	tests := []struct {
		name string
		kind Kind
		gen  func(n uint32) (string, error)
		ok   func(n uint32) bool
	}{
		{"SIMOG v1", KindSIMOGv1, GenerateSIMOGv1, func(n uint32) bool { return n >= 1 && n <= 9999999 }},
		{"SIMOG v2 letter A", KindSIMOGv2, func(n uint32) (string, error) { return GenerateSIMOGv2('A', n) }, func(n uint32) bool { return n <= 0xFFFFFF }},
		{"SIMOG v2 letter U", KindSIMOGv2, func(n uint32) (string, error) { return GenerateSIMOGv2('U', n) }, func(n uint32) bool { return n <= 0xFFFFFF }},
		{"Smart CIG X", KindSmartCIG, func(n uint32) (string, error) { return GenerateSmart('X', n) }, func(n uint32) bool { return n >= 1 && n <= 0xFFFFFFF }},
		{"Smart CIG Z", KindSmartCIG, func(n uint32) (string, error) { return GenerateSmart('Z', n) }, func(n uint32) bool { return n >= 1 && n <= 0xFFFFFFF }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range numbers {
				code, err := tt.gen(n)
				if !tt.ok(n) {
					if err == nil {
						t.Errorf("n=%#x: generated %q, want an error", n, code)
					} else if !errors.Is(err, ErrInvalid) {
						t.Errorf("n=%#x: error %v does not wrap ErrInvalid", n, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("n=%#x: %v", n, err)
				}
				if len(code) != Length {
					t.Fatalf("n=%#x: %q has length %d", n, code, len(code))
				}
				got, err := Validate(code)
				if err != nil || got != tt.kind {
					t.Errorf("n=%#x: Validate(%q) = %q, %v; want %q", n, code, got, err, tt.kind)
				}
			}
		})
	}
}

func TestGenerateReproducesExamples(t *testing.T) {
	tests := []struct {
		name string
		gen  func() (string, error)
		want string
	}{
		{"SIMOG v1", func() (string, error) { return GenerateSIMOGv1(9180522) }, "918052266A"},
		{"SIMOG v2", func() (string, error) { return GenerateSIMOGv2('B', 0x00012E) }, "B00012EADB"},
		{"Smart CIG", func() (string, error) { return GenerateSmart('Z', 0x3885F48) }, "Z3B3885F48"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.gen()
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGenerateBadPrefix(t *testing.T) {
	tests := []struct {
		name string
		gen  func() (string, error)
	}{
		{"SIMOG v2 letter V", func() (string, error) { return GenerateSIMOGv2('V', 1) }},
		{"SIMOG v2 lower-case", func() (string, error) { return GenerateSIMOGv2('a', 1) }},
		{"SIMOG v2 digit", func() (string, error) { return GenerateSIMOGv2('1', 1) }},
		{"Smart CIG prefix W", func() (string, error) { return GenerateSmart('W', 1) }},
		{"Smart CIG prefix NUL", func() (string, error) { return GenerateSmart(0, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.gen(); err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("got %q, %v; want an error wrapping ErrInvalid", got, err)
			}
		})
	}
}

// TestGeneratedMutations checks expectMutation's certain outcomes on generated codes
// of every letter and prefix.
func TestGeneratedMutations(t *testing.T) {
	var codes []string
	for _, n := range []uint32{1, 0x1234, 4091, 999999} {
		c, err := GenerateSIMOGv1(n)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, c)
	}
	for l := byte('A'); l <= 'U'; l++ {
		c, err := GenerateSIMOGv2(l, uint32(l)*0x10101)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, c)
	}
	for _, p := range []byte("XYZ") {
		c, err := GenerateSmart(p, uint32(p)*0x123457)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, c)
	}
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			checkMutations(t, code, allBytes)
		})
	}
}

// allBytes holds every byte value, for exhaustive mutation.
var allBytes = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// alphanumerics are the only bytes a CIG may contain; every other byte fails on
// format alone, so the fuzz test mutates only to these.
const alphanumerics = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// checkMutations replaces each byte of code by every other byte of replacements and
// compares Validate with expectMutation wherever the outcome is certain.
func checkMutations(t *testing.T, code, replacements string) {
	t.Helper()
	for pos := 0; pos < Length; pos++ {
		for i := 0; i < len(replacements); i++ {
			c := replacements[i]
			if c == code[pos] {
				continue
			}
			want, certain := expectMutation(code, pos, c)
			if !certain {
				continue
			}
			m := mutate(code, pos, c)
			got, err := Validate(m)
			if want == "" && err == nil {
				t.Errorf("mutation of %q: Validate(%q) = %q, want an error", code, m, got)
			}
			if want != "" && (err != nil || got != want) {
				t.Errorf("mutation of %q: Validate(%q) = %q, %v; want %q", code, m, got, err, want)
			}
		}
	}
}

func ExampleValidate() {
	for _, code := range []string{"B00012EADB", "918052266A", "Z3B3885F48", "V123456789", "B00012EADC", "b00012eadb"} {
		kind, err := Validate(code)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(code, kind)
	}
	// Output:
	// B00012EADB simog_v2_pcp
	// 918052266A simog_v1
	// Z3B3885F48 smart_cig
	// V123456789 unverified
	// invalid CIG "B00012EADC": wrong SIMOG v2/PCP check digits: expected ADB, got ADC
	// invalid CIG "b00012eadb": the character at position 1 is lower-case 'b'; CIGs are upper-case
}

func BenchmarkValidate(b *testing.B) {
	codes := make([]string, 0, 3)
	for _, ex := range examples {
		codes = append(codes, ex.code)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Validate(codes[i%len(codes)]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{" b00012eadb ", "B00012EADB"},
		{"\tz3b3885f48\n", "Z3B3885F48"},
		{"918052266A", "918052266A"},
		{"", ""},
	} {
		got := Normalize(tc.in)
		if got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.want != "" {
			if _, err := Validate(got); err != nil {
				t.Errorf("Validate(Normalize(%q)): %v", tc.in, err)
			}
		}
	}
}
