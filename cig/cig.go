// Package cig validates and generates ANAC CIGs (Codice Identificativo Gara).
//
// A CIG is ten upper-case characters, one per lot. ANAC publishes the check rules in
// the repository anticorruzione/npa, file
// "docs/Algoritmo validazione CIG/algoritmoValidazioneCIG.md". The first character
// selects the family:
//
//   - SIMOG v1 "NNNNNNNKKK": 7 decimal digits N (not all zero), then
//     KKK = hex(N × 211 mod 4091), three upper-case hex digits, zero-padded.
//   - SIMOG v2 and PCP "ANNNNNNKKK": A a letter A–U, N six hex digits, then
//     KKK = hex((hexvalue(N) + ord(A)) × 211 mod 4091), with ord(A)=1, B=2, … U=21.
//   - Smart CIG "AKKCCCCCCC": A is X, Y or Z, C seven hex digits (not all zero), then
//     KK = hex(hexvalue(C) × 211 mod 251), two hex digits.
//   - Codes beginning V or W followed by nine hex digits have no published check
//     rule; they are accepted on format alone, as KindUnverified.
//
// Two consequences of the published rules are worth knowing. The Smart CIG letter is
// not part of its check, so X, Y and Z are interchangeable: if X3B3885F48 is valid, so
// are Y3B3885F48 and Z3B3885F48. And any code whose tail is nine hex digits becomes a
// format-valid KindUnverified code if its first character is replaced by V or W.
// Every change of one character at positions 2 to 10, and every change of the first
// character within SIMOG v1 or within SIMOG v2/PCP, is always detected, because 4091
// and 251 are primes that share no factor with 211, with the digit weights or with a
// difference of ord(A). A first character changed into another checked family fails
// unless the digits happen to satisfy that family's check too (about 1 in 4091, or 1
// in 251); none of the three published examples does.
package cig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the family a CIG belongs to.
type Kind string

// The families of CIG that Validate recognises.
const (
	// KindSIMOGv1 is a legacy SIMOG code: 7 decimal digits and a 3-hex-digit check.
	KindSIMOGv1 Kind = "simog_v1"
	// KindSIMOGv2 is a SIMOG v2 or PCP code (they share the format): a letter A–U,
	// 6 hex digits and a 3-hex-digit check.
	KindSIMOGv2 Kind = "simog_v2_pcp"
	// KindSmartCIG is a Smart CIG: X, Y or Z, a 2-hex-digit check and 7 hex digits.
	KindSmartCIG Kind = "smart_cig"
	// KindUnverified is a code beginning V or W: its format is right but ANAC
	// publishes no check rule for it, so its check digits are not verified.
	KindUnverified Kind = "unverified"
)

// Length is the number of characters of every CIG.
const Length = 10

// ErrInvalid is wrapped by every error Validate returns (errors.Is works). The
// Generate functions wrap it too when asked for a code that cannot exist.
var ErrInvalid = errors.New("invalid CIG")

const (
	simogModulus = 4091
	smartModulus = 251
	multiplier   = 211

	maxSIMOGv1 = 9999999   // 7 decimal digits
	maxSIMOGv2 = 0xFFFFFF  // 6 hex digits
	maxSmart   = 0xFFFFFFF // 7 hex digits

	// quoteLimit is how many bytes of a rejected input an error message repeats.
	quoteLimit = 24
)

// Normalize returns code as people often type it made canonical: white
// space around it removed and letters upper-cased (" b1234567ab " becomes
// "B1234567AB"). Validate checks the result; it does not normalise itself.
func Normalize(code string) string {
	return strings.ToUpper(strings.TrimSpace(code))
}

// Validate checks code and returns its kind, or an error that says in plain English
// what is wrong: the length, the character at a position (counted from 1), or the
// check digits expected and found. The input is used as is: it is neither trimmed nor
// case-folded, and lower-case letters are rejected with an error that says CIGs are
// upper-case. Every error wraps ErrInvalid. A nil error with KindUnverified means the
// format is right but no check rule exists for the code's family.
func Validate(code string) (Kind, error) {
	if code == "" {
		return "", fmt.Errorf("%w: the code is empty; a CIG has %d characters", ErrInvalid, Length)
	}
	if n := utf8.RuneCountInString(code); n != Length {
		return "", invalidf(code, "it has %d characters; a CIG has exactly %d", n, Length)
	}
	// Ten runes but not ten bytes: something is not ASCII. Report where.
	if len(code) != Length {
		pos := 1
		for i, r := range code {
			if r >= utf8.RuneSelf {
				if r == utf8.RuneError {
					if _, size := utf8.DecodeRuneInString(code[i:]); size == 1 {
						return "", invalidf(code, "the character at position %d is not valid UTF-8 (byte 0x%02X); a CIG uses only digits 0-9 and letters A-Z", pos, code[i])
					}
				}
				return "", invalidf(code, "the character at position %d is %q, which is not ASCII; a CIG uses only digits 0-9 and letters A-Z", pos, r)
			}
			pos++
		}
	}

	first := code[0]
	switch {
	case isDigit(first):
		return validateSIMOGv1(code)
	case first >= 'A' && first <= 'U':
		return validateSIMOGv2(code)
	case first == 'V' || first == 'W':
		if err := checkHex(code, 1, Length); err != nil {
			return "", err
		}
		return KindUnverified, nil
	case first == 'X' || first == 'Y' || first == 'Z':
		return validateSmart(code)
	default:
		if err := badChar(code, 0); err != nil {
			return "", err
		}
		return "", invalidf(code, "the first character is %s; a CIG starts with a digit (SIMOG v1), a letter A-U (SIMOG v2/PCP), V or W, or X, Y or Z (Smart CIG)", describe(first))
	}
}

// GenerateSIMOGv1 returns the SIMOG v1 CIG whose progressive number is n, which must
// be in [1, 9999999].
func GenerateSIMOGv1(n uint32) (string, error) {
	if n == 0 || n > maxSIMOGv1 {
		return "", fmt.Errorf("%w: SIMOG v1 number %d is outside [1, %d]", ErrInvalid, n, maxSIMOGv1)
	}
	return fmt.Sprintf("%07d%03X", n, simogCheck(uint64(n))), nil
}

// GenerateSIMOGv2 returns the SIMOG v2/PCP CIG with the given letter, which must be
// in A–U, and progressive number n, which must be in [0, 0xFFFFFF].
func GenerateSIMOGv2(letter byte, n uint32) (string, error) {
	if letter < 'A' || letter > 'U' {
		return "", fmt.Errorf("%w: SIMOG v2/PCP letter %s is not in A-U", ErrInvalid, describe(letter))
	}
	if n > maxSIMOGv2 {
		return "", fmt.Errorf("%w: SIMOG v2/PCP number %#x is outside [0, %#x]", ErrInvalid, n, maxSIMOGv2)
	}
	return fmt.Sprintf("%c%06X%03X", letter, n, simogCheck(uint64(n)+ord(letter))), nil
}

// GenerateSmart returns the Smart CIG with the given prefix, which must be X, Y or Z,
// and progressive number n, which must be in [1, 0xFFFFFFF].
func GenerateSmart(prefix byte, n uint32) (string, error) {
	if prefix != 'X' && prefix != 'Y' && prefix != 'Z' {
		return "", fmt.Errorf("%w: Smart CIG prefix %s is not X, Y or Z", ErrInvalid, describe(prefix))
	}
	if n == 0 || n > maxSmart {
		return "", fmt.Errorf("%w: Smart CIG number %#x is outside [1, %#x]", ErrInvalid, n, maxSmart)
	}
	return fmt.Sprintf("%c%02X%07X", prefix, smartCheck(uint64(n)), n), nil
}

// validateSIMOGv1 checks a code whose first character is a decimal digit.
func validateSIMOGv1(code string) (Kind, error) {
	for i := 1; i < 7; i++ {
		if !isDigit(code[i]) {
			if err := badChar(code, i); err != nil {
				return "", err
			}
			return "", invalidf(code, "the character at position %d is %s; a CIG that starts with a digit (SIMOG v1) has 7 decimal digits before the check digits", i+1, describe(code[i]))
		}
	}
	if err := checkHex(code, 7, Length); err != nil {
		return "", err
	}
	n, _ := strconv.ParseUint(code[:7], 10, 32) // seven checked digits always parse
	if n == 0 {
		return "", invalidf(code, "the number 0000000 is never issued; a SIMOG v1 CIG's first 7 digits are not all zero")
	}
	return result(KindSIMOGv1, compareCheck(code, "SIMOG v1", code[7:], simogCheck(n), 3))
}

// validateSIMOGv2 checks a code whose first character is a letter A–U.
func validateSIMOGv2(code string) (Kind, error) {
	if err := checkHex(code, 1, Length); err != nil {
		return "", err
	}
	n, _ := strconv.ParseUint(code[1:7], 16, 32) // six checked hex digits always parse
	return result(KindSIMOGv2, compareCheck(code, "SIMOG v2/PCP", code[7:], simogCheck(n+ord(code[0])), 3))
}

// validateSmart checks a code whose first character is X, Y or Z.
func validateSmart(code string) (Kind, error) {
	if err := checkHex(code, 1, Length); err != nil {
		return "", err
	}
	n, _ := strconv.ParseUint(code[3:], 16, 32) // seven checked hex digits always parse
	if n == 0 {
		return "", invalidf(code, "the number 0000000 is never issued; a Smart CIG's last 7 characters are not all zero")
	}
	return result(KindSmartCIG, compareCheck(code, "Smart CIG", code[1:3], smartCheck(n), 2))
}

// result returns kind if err is nil, and no kind otherwise.
func result(kind Kind, err error) (Kind, error) {
	if err != nil {
		return "", err
	}
	return kind, nil
}

// compareCheck returns nil if got is want written as width upper-case hex digits,
// zero-padded, else an error naming both. It does not allocate when they match.
func compareCheck(code, family, got string, want uint64, width int) error {
	var buf [3]byte
	digits := buf[:width]
	for i := width - 1; i >= 0; i-- {
		digits[i] = upperHex[want&0xF]
		want >>= 4
	}
	if got == string(digits) {
		return nil
	}
	return invalidf(code, "wrong %s check digits: expected %s, got %s", family, digits, got)
}

const upperHex = "0123456789ABCDEF"

// simogCheck is the SIMOG v1/v2/PCP check value of v.
func simogCheck(v uint64) uint64 { return v * multiplier % simogModulus }

// smartCheck is the Smart CIG check value of v.
func smartCheck(v uint64) uint64 { return v * multiplier % smartModulus }

// ord returns the position of an upper-case letter in the alphabet, A=1.
func ord(letter byte) uint64 { return uint64(letter-'A') + 1 }

// checkHex returns an error for the first byte of code[from:to] that is not an
// upper-case hex digit.
func checkHex(code string, from, to int) error {
	for i := from; i < to; i++ {
		if !isHex(code[i]) {
			if err := badChar(code, i); err != nil {
				return err
			}
			return invalidf(code, "the character at position %d is %s; expected a hex digit 0-9 or A-F", i+1, describe(code[i]))
		}
	}
	return nil
}

// badChar returns an error if code[i] can never appear in a CIG (it is lower-case or
// not a letter or digit), and nil if it is a digit or upper-case letter.
func badChar(code string, i int) error {
	c := code[i]
	switch {
	case c >= 'a' && c <= 'z':
		return invalidf(code, "the character at position %d is lower-case %q; CIGs are upper-case", i+1, rune(c))
	case isDigit(c) || (c >= 'A' && c <= 'Z'):
		return nil
	default:
		return invalidf(code, "the character at position %d is %s; a CIG uses only digits 0-9 and letters A-Z", i+1, describe(c))
	}
}

// invalidf formats an error about code that wraps ErrInvalid. It quotes at most
// quoteLimit bytes of code so that huge inputs do not make huge messages.
func invalidf(code, format string, args ...any) error {
	shown := code
	suffix := ""
	if len(shown) > quoteLimit {
		shown, suffix = shown[:quoteLimit], "..."
	}
	return fmt.Errorf("%w %q%s: %s", ErrInvalid, shown, suffix, fmt.Sprintf(format, args...))
}

// describe renders a byte for an error message.
func describe(c byte) string {
	if c >= 0x20 && c < 0x7F {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || (c >= 'A' && c <= 'F') }

// Unverified reports whether code is a valid CIG of a family whose check
// digit ANAC does not publish (KindUnverified); false for "" and for any
// invalid code.
func Unverified(code string) bool {
	if code == "" {
		return false
	}
	k, err := Validate(code)
	return err == nil && k == KindUnverified
}
