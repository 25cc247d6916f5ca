package message

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/promemoria/promemoria/events"
)

// DigestItem is one reminder or advice as an e-mail lists it.
type DigestItem struct {
	// Type is the output type: reminder.cig, reminder.contribution,
	// reminder.escalation, reminder.resolved or advice.deadline_extension.
	Type        events.Type
	TenderID    string
	TenderTitle string
	// Authority is the contracting authority's name; empty if unknown.
	Authority string
	// LotID is empty for an advice, which concerns the whole tender.
	LotID string
	CIG   string
	// Operator is the bidder of a contribution reminder.
	Operator *events.Operator
	// Sequence is the reminder's number (reminder.cig and
	// reminder.contribution only; 0 otherwise).
	Sequence int
	// Deadline is the offer deadline or the payment term; zero if none.
	Deadline time.Time
	// Text is the item's own message, as the worker wrote it.
	Text events.Message
}

// Digest is the data of an e-mail that carries several reminders and
// advices for one recipient: the digest templates (digest.tmpl for the
// text part, digest.html for the HTML part) list them, then quote each
// text in full.
type Digest struct {
	// Recipient is who the e-mail is addressed to.
	Recipient events.Person
	// Operator is set when the recipient is a bidder: the salutation is
	// then the operator's ("Spett.le …").
	Operator *events.Operator
	Items    []DigestItem
}

// Mail is an e-mail ready to send: its subject (Italian), its text part
// (Italian first, English below) and, for a digest, its HTML part.
type Mail struct {
	Subject string
	Text    string
	// HTML is empty for a single reminder, whose text is plain.
	HTML string
}

// The digest templates' file names, in each language's folder.
const (
	digestText = "digest.tmpl"
	digestHTML = "digest.html"
)

// EnglishSeparator separates the Italian text of an e-mail from the
// English one.
const EnglishSeparator = "————————————————————————————————————————\nEnglish version"

// digestTemplates holds the digest's templates of one language.
type digestTemplates struct {
	text *template.Template
	html *htmltemplate.Template
	// textPath and htmlPath name their sources, for errors.
	textPath, htmlPath string
	// builtinText and builtinHTML are the embedded ones, when overridden.
	builtinText *template.Template
	builtinHTML *htmltemplate.Template
}

// digestFuncs adds to the template functions of lang those the digest
// needs: inc n (n+1) and paragraphs text (the text's paragraphs, each a
// list of lines).
func digestFuncs(lang Lang, loc *time.Location) map[string]any {
	fm := map[string]any(funcMap(lang, loc))
	fm["inc"] = func(n int) int { return n + 1 }
	fm["paragraphs"] = func(s string) [][]string {
		var out [][]string
		for _, p := range strings.Split(s, "\n\n") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, strings.Split(p, "\n"))
			}
		}
		return out
	}
	return fm
}

// loadDigest parses the digest templates of lang (dir's, if there are,
// else the embedded ones) and runs them on the digest samples.
func loadDigest(dir string, lang Lang, loc *time.Location) (*digestTemplates, error) {
	funcs := digestFuncs(lang, loc)
	d := &digestTemplates{}
	parse := func(dir string) (*template.Template, *htmltemplate.Template, string, string, error) {
		src, tpath, err := sourceFile(dir, lang, digestText)
		if err != nil {
			return nil, nil, tpath, "", err
		}
		tt, err := template.New(digestText).Funcs(funcs).Parse(string(src))
		if err != nil {
			return nil, nil, tpath, "", fmt.Errorf("template %s: %w", tpath, err)
		}
		src, hpath, err := sourceFile(dir, lang, digestHTML)
		if err != nil {
			return nil, nil, tpath, hpath, err
		}
		ht, err := htmltemplate.New(digestHTML).Funcs(funcs).Parse(string(src))
		if err != nil {
			return nil, nil, tpath, hpath, fmt.Errorf("template %s: %w", hpath, err)
		}
		return tt, ht, tpath, hpath, nil
	}
	var err error
	if d.text, d.html, d.textPath, d.htmlPath, err = parse(dir); err != nil {
		return nil, err
	}
	for _, s := range digestSamples {
		if _, err := execText(d.text, s.data); err != nil {
			return nil, fmt.Errorf("template %s: sample %q: %w", d.textPath, s.name, err)
		}
		if _, err := execHTML(d.html, s.data); err != nil {
			return nil, fmt.Errorf("template %s: sample %q: %w", d.htmlPath, s.name, err)
		}
	}
	if dir != "" && (!strings.HasSuffix(d.textPath, "(embedded)") || !strings.HasSuffix(d.htmlPath, "(embedded)")) {
		if d.builtinText, d.builtinHTML, _, _, err = parse(""); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// execText runs a text template and tidies its output; an empty text is
// an error.
func execText(t *template.Template, data any) (string, error) {
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", err
	}
	s := tidy(out.String())
	if s == "" {
		return "", errors.New("empty text")
	}
	return s, nil
}

// execHTML runs an HTML template; an empty output is an error.
func execHTML(t *htmltemplate.Template, data any) (string, error) {
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", err
	}
	s := strings.TrimSpace(out.String())
	if s == "" {
		return "", errors.New("empty HTML")
	}
	return s, nil
}

// Mail writes the e-mail that carries d's items. One item gives its own
// text, Italian then English, and no HTML part; several give a digest
// from the digest templates, with an HTML part that lists them in a
// table. The subject is in Italian. If an overriding digest template
// fails on d, the embedded one writes the e-mail and Mail returns it with
// an error wrapping ErrFallback.
func (t *Texts) Mail(d Digest) (Mail, error) {
	if len(d.Items) == 0 {
		return Mail{}, errors.New("mail: no items")
	}
	m := Mail{Subject: Subject(d.Items)}
	if len(d.Items) == 1 {
		it := d.Items[0].Text
		m.Text = joinLangs(strings.TrimSpace(it.IT), strings.TrimSpace(it.EN))
		return m, nil
	}
	var (
		texts    = map[Lang]string{}
		htmls    = map[Lang]string{}
		fallback error
	)
	for _, lang := range Langs {
		dt := t.digest[lang]
		if dt == nil {
			return Mail{}, fmt.Errorf("mail: no digest templates for %s", lang)
		}
		s, err := execText(dt.text, d)
		if err != nil {
			if dt.builtinText == nil {
				return Mail{}, fmt.Errorf("mail: template %s: %w", dt.textPath, err)
			}
			var berr error
			if s, berr = execText(dt.builtinText, d); berr != nil {
				return Mail{}, fmt.Errorf("mail: template %s: %w", dt.textPath, err)
			}
			fallback = errors.Join(fallback, fmt.Errorf("mail: template %s: %w: %w", dt.textPath, ErrFallback, err))
		}
		texts[lang] = s
		h, err := execHTML(dt.html, d)
		if err != nil {
			if dt.builtinHTML == nil {
				return Mail{}, fmt.Errorf("mail: template %s: %w", dt.htmlPath, err)
			}
			var berr error
			if h, berr = execHTML(dt.builtinHTML, d); berr != nil {
				return Mail{}, fmt.Errorf("mail: template %s: %w", dt.htmlPath, err)
			}
			fallback = errors.Join(fallback, fmt.Errorf("mail: template %s: %w: %w", dt.htmlPath, ErrFallback, err))
		}
		htmls[lang] = h
	}
	m.Text = joinLangs(texts[IT], texts[EN])
	m.HTML = "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><title>" +
		htmltemplate.HTMLEscapeString(m.Subject) + "</title></head>\n<body>\n" +
		htmls[IT] + "\n<hr>\n<div lang=\"en\">\n" + htmls[EN] + "\n</div>\n</body>\n</html>\n"
	return m, fallback
}

// joinLangs puts the English text below the Italian one.
func joinLangs(it, en string) string {
	return it + "\n\n" + EnglishSeparator + "\n\n" + en + "\n"
}

// subjectNames are the Italian phrases of the subject, by type: for one
// item, for several of the same type.
var subjectNames = map[events.Type][2]string{
	events.TypeReminderCIG:          {"CIG da integrare", "solleciti: CIG da integrare"},
	events.TypeReminderContribution: {"contributo ANAC da versare", "solleciti: contributo ANAC da versare"},
	events.TypeReminderEscalation:   {"Termine in scadenza", "termini in scadenza"},
	events.TypeReminderResolved:     {"Segnalazione chiusa", "segnalazioni chiuse"},
	events.TypeAdviceExtension:      {"Proposta di proroga del termine", "proposte di proroga del termine"},
}

// Subject returns the Italian subject of the e-mail that carries items:
// "[promemoria] Sollecito n. 2: CIG da integrare – Comune di Esempio" for
// one, "[promemoria] 3 solleciti: CIG da integrare – Comune di Esempio"
// for several of one type, "[promemoria] 3 comunicazioni – …" for a mix.
// The authority is named when every item has the same one; one item also
// names its tender (and lot).
func Subject(items []DigestItem) string {
	if len(items) == 0 {
		return "[promemoria]"
	}
	var b strings.Builder
	b.WriteString("[promemoria] ")
	first := items[0]
	if len(items) == 1 {
		names, ok := subjectNames[first.Type]
		switch {
		case !ok:
			b.WriteString("Comunicazione")
		case (first.Type == events.TypeReminderCIG || first.Type == events.TypeReminderContribution) && first.Sequence > 1:
			b.WriteString("Sollecito n. " + strconv.Itoa(first.Sequence) + ": " + names[0])
		default:
			b.WriteString(capFirst(names[0]))
		}
		b.WriteString(" – rif. " + first.TenderID)
		if first.LotID != "" {
			b.WriteString(", lotto " + first.LotID)
		}
	} else {
		same := true
		for _, it := range items[1:] {
			same = same && it.Type == first.Type
		}
		names, ok := subjectNames[first.Type]
		if same && ok {
			b.WriteString(strconv.Itoa(len(items)) + " " + names[1])
		} else {
			b.WriteString(strconv.Itoa(len(items)) + " comunicazioni")
		}
	}
	auth := first.Authority
	for _, it := range items[1:] {
		if it.Authority != auth {
			auth = ""
		}
	}
	if auth = strings.TrimSpace(auth); auth != "" {
		b.WriteString(" – " + auth)
	}
	// A subject is one line.
	return strings.Join(strings.Fields(b.String()), " ")
}

// sourceFile returns the text of dir/<lang>/name if dir has it, else of
// the embedded templates/<lang>/name; path names it for errors.
func sourceFile(dir string, lang Lang, name string) (src []byte, path string, err error) {
	if dir != "" {
		path = filepath.Join(dir, string(lang), name)
		src, err = os.ReadFile(path)
		if err == nil {
			return src, path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, path, fmt.Errorf("template %s: %w", path, err)
		}
	}
	path = "templates/" + string(lang) + "/" + name
	src, err = embedded.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("template %s (embedded): %w", path, err)
	}
	return src, path + " (embedded)", nil
}
