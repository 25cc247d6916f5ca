package message

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/promemoria/promemoria/events"
)

// funcMap returns the template functions of lang; every language has the
// same names. Dates are written in loc.
//
//   - date t [prep], datetime t [prep]: "12/05/2021", "12/05/2021 alle ore
//     12:00"; "12 May 2021", "12 May 2021, 12:00". The optional
//     preposition is written before the date, elided in Italian where the
//     day is read with a vowel: {{datetime .Restored "dal"}} gives "dal
//     07/05/2021 alle ore 18:00" but "dall'11/05/2021 alle ore 18:00".
//     A zero time is an error: test it first.
//   - clock t: "12:00".
//   - euro cents: "1.234,00 €", "€1,234.00".
//   - service id, theService id: a service's public name, without and with
//     its article ("Smart CIG", "il servizio Smart CIG").
//   - basis citation: the Italian citation of a rule, as given in Italian,
//     "Article 79(5-bis) of Legislative Decree 50/2016" in English; art.
//     25, comma 2, d.lgs. 36/2023 is cited by its third sentence, the one
//     on platform malfunctions: "art. 25, comma 2, terzo periodo, d.lgs.
//     36/2023", "Article 25(2), third sentence, of Legislative Decree
//     36/2023".
//   - duration d: "2 giorni e 4 ore", "2 days and 4 hours".
//   - salutation recipient: "Gentile Anna Bianchi", "Spett.le Edilstrade
//     S.r.l.", "Dear Anna Bianchi", "Dear Sir or Madam" (a company).
//   - operator op: "Edilstrade S.r.l. (C.F. 01234567890)".
//   - capfirst s: s with its first letter in upper case.
func funcMap(lang Lang, loc *time.Location) template.FuncMap {
	return template.FuncMap{
		"date": func(t time.Time, prep ...string) (string, error) {
			s, err := formatDate(lang, loc, t)
			return withPreposition(lang, loc, t, prep, s), err
		},
		"datetime": func(t time.Time, prep ...string) (string, error) {
			s, err := formatDateTime(lang, loc, t)
			return withPreposition(lang, loc, t, prep, s), err
		},
		"clock": func(t time.Time) (string, error) {
			if t.IsZero() {
				return "", fmt.Errorf("clock: %w", errZeroTime)
			}
			return t.In(loc).Format("15:04"), nil
		},
		"euro":       func(cents int64) string { return formatEuro(lang, cents) },
		"service":    func(id string) string { return ServiceName(id, lang) },
		"theService": func(id string) string { return servicePhrase(id, lang) },
		"basis":      func(citation string) (string, error) { return formatBasis(lang, citation) },
		"duration":   func(d time.Duration) (string, error) { return formatDuration(lang, d) },
		"salutation": func(recipient any) (string, error) { return salutation(lang, recipient) },
		"operator":   func(op *events.Operator) (string, error) { return formatOperator(lang, op) },
		"capfirst":   capFirst,
	}
}

// errZeroTime is returned when a template writes a date that is not set:
// the template must test it first ({{if not .Deadline.IsZero}}).
var errZeroTime = errors.New("zero time: the template must check IsZero first")

// formatDate writes the day of t in loc: 12/05/2021, 12 May 2021.
func formatDate(lang Lang, loc *time.Location, t time.Time) (string, error) {
	if t.IsZero() {
		return "", fmt.Errorf("date: %w", errZeroTime)
	}
	t = t.In(loc)
	if lang == EN {
		return t.Format("2 January 2006"), nil
	}
	return t.Format("02/01/2006"), nil
}

// formatDateTime writes t in loc: "12/05/2021 alle ore 12:00",
// "12 May 2021, 12:00".
func formatDateTime(lang Lang, loc *time.Location, t time.Time) (string, error) {
	if t.IsZero() {
		return "", fmt.Errorf("datetime: %w", errZeroTime)
	}
	t = t.In(loc)
	if lang == EN {
		return t.Format("2 January 2006, 15:04"), nil
	}
	return t.Format("02/01/2006") + " alle ore " + t.Format("15:04"), nil
}

// elided maps an Italian preposition (or article) to its form before a
// vowel.
var elided = map[string]string{
	"il": "l'", "lo": "l'", "dal": "dall'", "al": "all'", "del": "dell'",
	"nel": "nell'", "sul": "sull'", "dallo": "dall'", "allo": "all'", "dello": "dell'",
}

// withPreposition writes prep (its words joined by spaces) before the
// date text s of t. In Italian the last word is elided when the day is
// read with a vowel: 8 (otto) and 11 (undici), "dall'11/05/2021".
func withPreposition(lang Lang, loc *time.Location, t time.Time, prep []string, s string) string {
	p := strings.Join(prep, " ")
	if p == "" || s == "" {
		return s
	}
	if lang != EN {
		if day := t.In(loc).Day(); day == 8 || day == 11 {
			words := strings.Fields(p)
			last := words[len(words)-1]
			if e, ok := elided[strings.ToLower(last)]; ok {
				if last != strings.ToLower(last) {
					e = capFirst(e)
				}
				words[len(words)-1] = e
				return strings.Join(words, " ") + s
			}
		}
	}
	return p + " " + s
}

// formatEuro writes an amount in cents: "1.234,00 €" in Italian,
// "€1,234.00" in English.
func formatEuro(lang Lang, cents int64) string {
	sign, abs := "", uint64(cents)
	if cents < 0 {
		sign, abs = "-", uint64(^cents)+1
	}
	thousands, decimal := ".", ","
	if lang == EN {
		thousands, decimal = ",", "."
	}
	units := strconv.FormatUint(abs/100, 10)
	var b strings.Builder
	for i, r := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteString(thousands)
		}
		b.WriteRune(r)
	}
	amount := fmt.Sprintf("%s%s%02d", b.String(), decimal, abs%100)
	if lang == EN {
		return sign + "€" + amount
	}
	return sign + amount + " €"
}

// citation matches an Italian citation of a rule: "art. 25, comma 2,
// d.lgs. 36/2023", "art. 79, comma 5-bis, d.lgs. 50/2016", "art. 92, comma
// 2, lett. c), d.lgs. 36/2023", "art. 25, comma 2, terzo periodo, d.lgs.
// 36/2023", "art. 1, c. 65, l. 266/2005".
var citation = regexp.MustCompile(`(?i)^art(?:icolo|\.)?\s*(\d+(?:-[a-z]+)?)\s*,?\s*` +
	`(?:(?:comma|c\.)\s*(\d+(?:-[a-z]+)?)\s*,?\s*)?` +
	`(?:(?:lettera|lett\.)\s*([a-z]+)\)?\s*,?\s*)?` +
	`(?:(primo|secondo|terzo|quarto|quinto|ultimo)\s+periodo\s*,?\s*)?` +
	`(d\.\s*lgs\.?|decreto legislativo|d\.\s*l\.|decreto-legge|d\.\s*p\.\s*r\.?|l\.|legge)\s*(?:n\.\s*)?(\d+\s*/\s*\d{4})$`)

// actsEN names the kinds of act in English, by their normalised Italian
// abbreviation.
var actsEN = map[string]string{
	"d.lgs.": "Legislative Decree", "decretolegislativo": "Legislative Decree",
	"d.l.": "Decree-Law", "decreto-legge": "Decree-Law",
	"d.p.r.": "Presidential Decree", "d.p.r": "Presidential Decree",
	"l.": "Law", "legge": "Law", "d.lgs": "Legislative Decree",
}

// sentencesEN names the sentences (periodi) of a paragraph in English.
var sentencesEN = map[string]string{
	"primo": "first", "secondo": "second", "terzo": "third", "quarto": "fourth", "quinto": "fifth", "ultimo": "last",
}

// citedBasis2023 is the citation of the rule on platform malfunctions under
// d.lgs. 36/2023 as formatBasis writes it in Italian: the third sentence
// of art. 25, comma 2.
const citedBasis2023 = "art. 25, comma 2, terzo periodo, d.lgs. 36/2023"

// formatBasis renders an Italian citation in lang: as given in Italian,
// "Article 79(5-bis) of Legislative Decree 50/2016" in English. Art. 25,
// comma 2, d.lgs. 36/2023 is cited by the sentence that governs platform
// malfunctions, its third: "art. 25, comma 2, terzo periodo, d.lgs.
// 36/2023", "Article 25(2), third sentence, of Legislative Decree
// 36/2023". A citation it cannot read is returned as given; an empty one
// is an error.
func formatBasis(lang Lang, it string) (string, error) {
	it = strings.TrimSpace(it)
	if it == "" {
		return "", errors.New("basis: empty citation: the template must check it first")
	}
	m := citation.FindStringSubmatch(it)
	if m == nil {
		return it, nil
	}
	act := actsEN[strings.ToLower(strings.Join(strings.Fields(m[5]), ""))]
	if act == "" {
		return it, nil
	}
	article, paragraph, letter := strings.ToLower(m[1]), strings.ToLower(m[2]), strings.ToLower(m[3])
	sentence, number := strings.ToLower(m[4]), strings.Join(strings.Fields(m[6]), "")
	if article == "25" && paragraph == "2" && letter == "" && sentence == "" &&
		act == "Legislative Decree" && number == "36/2023" {
		it, sentence = citedBasis2023, "terzo"
	}
	if lang != EN {
		return it, nil
	}
	s := "Article " + article
	if paragraph != "" {
		s += "(" + paragraph + ")"
	}
	if letter != "" {
		s += "(" + letter + ")"
	}
	if sentence != "" {
		s += ", " + sentencesEN[sentence] + " sentence,"
	}
	return s + " of " + act + " " + number, nil
}

// formatDuration writes d to the minute in days, hours and minutes: "2
// giorni e 4 ore", "1 giorno", "3 ore e 20 minuti"; "2 days and 4 hours".
func formatDuration(lang Lang, d time.Duration) (string, error) {
	if d < 0 {
		return "", fmt.Errorf("duration: negative duration %s", d)
	}
	minutes := int64(d.Round(time.Minute) / time.Minute)
	if minutes == 0 {
		switch {
		case d == 0 && lang == EN:
			return "0 minutes", nil
		case d == 0:
			return "0 minuti", nil
		case lang == EN:
			return "less than a minute", nil
		default:
			return "meno di un minuto", nil
		}
	}
	units := []struct {
		n                        int64
		itOne, itMany, enOne, en string
	}{
		{minutes / (24 * 60), "giorno", "giorni", "day", "days"},
		{minutes / 60 % 24, "ora", "ore", "hour", "hours"},
		{minutes % 60, "minuto", "minuti", "minute", "minutes"},
	}
	var parts []string
	for _, u := range units {
		if u.n == 0 {
			continue
		}
		word := u.itMany
		switch {
		case lang == EN && u.n == 1:
			word = u.enOne
		case lang == EN:
			word = u.en
		case u.n == 1:
			word = u.itOne
		}
		parts = append(parts, strconv.FormatInt(u.n, 10)+" "+word)
	}
	and := " e "
	if lang == EN {
		and = " and "
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return strings.Join(parts[:len(parts)-1], ", ") + and + parts[len(parts)-1], nil
}

// salutation returns the formal opening for a recipient, without its
// comma: a natural person (events.Person, or an events.Operator whose
// fiscal code is a 16-character codice fiscale) gets "Gentile <name>" or
// "Dear <name>"; any other operator, a company with an 11-digit partita
// IVA in the first place, gets "Spett.le <name>" or "Dear Sir or Madam".
func salutation(lang Lang, recipient any) (string, error) {
	switch r := recipient.(type) {
	case events.Person:
		return personSalutation(lang, r.Name, "Gentile Responsabile"), nil
	case *events.Person:
		if r == nil {
			return personSalutation(lang, "", "Gentile Responsabile"), nil
		}
		return personSalutation(lang, r.Name, "Gentile Responsabile"), nil
	case events.Operator:
		return operatorSalutation(lang, &r), nil
	case *events.Operator:
		return operatorSalutation(lang, r), nil
	default:
		return "", fmt.Errorf("salutation: want an events.Person or events.Operator, got %T", recipient)
	}
}

// personSalutation greets a natural person by name; anonymousIT is the
// Italian greeting when the name is missing.
func personSalutation(lang Lang, name, anonymousIT string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "" && lang == EN:
		return "Dear Sir or Madam"
	case name == "":
		return anonymousIT
	case lang == EN:
		return "Dear " + name
	default:
		return "Gentile " + name
	}
}

// operatorSalutation greets an operator: a natural person as such, a
// company (or an operator with a foreign or unknown code) formally.
func operatorSalutation(lang Lang, op *events.Operator) string {
	if op == nil {
		op = &events.Operator{}
	}
	name := strings.TrimSpace(op.Name)
	switch {
	case isPersonalCode(op.FiscalCode):
		return personSalutation(lang, name, "Spett.le operatore economico")
	case lang == EN:
		return "Dear Sir or Madam"
	case name == "":
		return "Spett.le operatore economico"
	default:
		return "Spett.le " + name
	}
}

// isPersonalCode reports whether code is a natural person's codice
// fiscale: 16 letters and digits (a company's is 11 digits).
func isPersonalCode(code string) bool {
	code = strings.TrimSpace(code)
	if len(code) != 16 {
		return false
	}
	for _, r := range code {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) || r > unicode.MaxASCII {
			return false
		}
	}
	return true
}

// formatOperator names an operator with its fiscal code in parentheses:
// "Edilstrade S.r.l. (C.F. 01234567890)", "Edilstrade S.r.l. (tax code
// 01234567890)"; the code alone if the name is missing.
func formatOperator(lang Lang, op *events.Operator) (string, error) {
	if op == nil {
		return "", errors.New("operator: no operator")
	}
	code := "C.F. " + strings.TrimSpace(op.FiscalCode)
	if lang == EN {
		code = "tax code " + strings.TrimSpace(op.FiscalCode)
	}
	if name := strings.TrimSpace(op.Name); name != "" {
		return name + " (" + code + ")", nil
	}
	return code, nil
}

// capFirst upper-cases the first letter of s, for a phrase that starts a
// sentence or a list item.
func capFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
