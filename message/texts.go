// Package message writes promemoria's human texts, in Italian and English,
// from text/template files: one file per message kind and language,
// embedded in the binary and overridable from a directory.
package message

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // Europe/Rome even where the system has no zone database

	"github.com/promemoria/promemoria/events"
)

//go:embed templates/it/*.tmpl templates/en/*.tmpl templates/it/*.html templates/en/*.html
var embedded embed.FS

// Texts holds the parsed templates of every kind in both languages. It is
// safe for concurrent use.
type Texts struct {
	templates map[Lang]map[Kind]*template.Template
	// paths names each template's source, for errors.
	paths map[Lang]map[Kind]string
	// builtin holds the embedded template of each kind overridden from a
	// directory: Render falls back to it when the override fails.
	builtin map[Lang]map[Kind]*template.Template
	// digest holds the digest e-mail's templates of each language.
	digest map[Lang]*digestTemplates
}

// ErrFallback is wrapped by the error Render returns, beside a complete
// message, when an overriding template failed on the data and the
// embedded one wrote the text instead: the caller sends the message and
// reports the error.
var ErrFallback = errors.New("overriding template failed: the embedded one was used")

// Load parses the embedded templates and, if dir != "", overrides each one
// found at dir/<lang>/<kind>.tmpl; a .tmpl file there that names no kind
// is an error, so that a misspelt override is not silently ignored. Each
// template is then executed on built-in sample data for its kind (every
// branch-relevant variant); a template that fails to parse or to execute,
// or that writes an empty text, stops Load with an error naming the file.
// loc is the time zone dates are written in (nil: Europe/Rome).
func Load(dir string, loc *time.Location) (*Texts, error) {
	if loc == nil {
		loc = rome
	}
	if dir != "" {
		if err := checkDir(dir); err != nil {
			return nil, err
		}
	}
	t := &Texts{
		templates: make(map[Lang]map[Kind]*template.Template),
		paths:     make(map[Lang]map[Kind]string),
		builtin:   make(map[Lang]map[Kind]*template.Template),
		digest:    make(map[Lang]*digestTemplates),
	}
	for _, lang := range Langs {
		d, err := loadDigest(dir, lang, loc)
		if err != nil {
			return nil, err
		}
		t.digest[lang] = d
		t.templates[lang] = make(map[Kind]*template.Template)
		t.paths[lang] = make(map[Kind]string)
		t.builtin[lang] = make(map[Kind]*template.Template)
		funcs := funcMap(lang, loc)
		for _, kind := range Kinds {
			src, path, err := source(dir, lang, kind)
			if err != nil {
				return nil, err
			}
			tmpl, err := template.New(string(kind) + ".tmpl").Funcs(funcs).Parse(string(src))
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", path, err)
			}
			for _, s := range samples[kind] {
				var out bytes.Buffer
				if err := tmpl.Execute(&out, s.data); err != nil {
					return nil, fmt.Errorf("template %s: sample %q: %w", path, s.name, err)
				}
				if tidy(out.String()) == "" {
					return nil, fmt.Errorf("template %s: sample %q: empty text", path, s.name)
				}
			}
			t.templates[lang][kind] = tmpl
			t.paths[lang][kind] = path
			if !strings.HasSuffix(path, "(embedded)") {
				src, _, err := source("", lang, kind)
				if err != nil {
					return nil, err
				}
				if t.builtin[lang][kind], err = template.New(string(kind) + ".tmpl").Funcs(funcs).Parse(string(src)); err != nil {
					return nil, fmt.Errorf("template %s (embedded): %w", kind, err)
				}
			}
		}
	}
	return t, nil
}

// source returns the text of the template of kind in lang: dir's file if
// there is one, else the embedded one; path names it for errors.
func source(dir string, lang Lang, kind Kind) (src []byte, path string, err error) {
	return sourceFile(dir, lang, string(kind)+".tmpl")
}

// checkDir fails if dir is not a directory or holds, under a language's
// folder, a .tmpl file that names no kind.
func checkDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("templates directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("templates directory %s: not a directory", dir)
	}
	known := map[string]bool{digestText: true}
	for _, k := range Kinds {
		known[string(k)+".tmpl"] = true
	}
	for _, lang := range Langs {
		entries, err := os.ReadDir(filepath.Join(dir, string(lang)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("templates directory: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".tmpl") && !known[e.Name()] {
				return fmt.Errorf("template %s: no message kind is named %q (kinds: %s)",
					filepath.Join(dir, string(lang), e.Name()), strings.TrimSuffix(e.Name(), ".tmpl"), kindList())
			}
		}
	}
	return nil
}

// kindList names every message kind, for errors.
func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(append(s, "digest"), ", ")
}

// Render writes the message of kind from data (one of Reminder,
// Escalation, Resolved, Advice, passed by value or pointer) in both
// languages. The data must fit the kind: a Reminder for reminder.cig has
// a gap of kind cig, one for reminder.contribution a gap of kind
// contribution; an Escalation or Resolved has a gap of either kind. Lines
// lose their trailing spaces, runs of blank lines shrink to one, and the
// text has no leading or trailing blank lines. If an overriding template
// fails on data that the embedded one renders, Render returns the
// message together with an error wrapping ErrFallback.
func (t *Texts) Render(kind Kind, data any) (events.Message, error) {
	if err := fits(kind, data); err != nil {
		return events.Message{}, fmt.Errorf("message %s: %w", kind, err)
	}
	var (
		m        events.Message
		fallback error
	)
	for _, lang := range Langs {
		tmpl, ok := t.templates[lang][kind]
		if !ok {
			return events.Message{}, fmt.Errorf("message %s: unknown kind", kind)
		}
		var out bytes.Buffer
		if err := tmpl.Execute(&out, data); err != nil {
			builtin := t.builtin[lang][kind]
			out.Reset()
			if builtin == nil || builtin.Execute(&out, data) != nil {
				return events.Message{}, fmt.Errorf("message %s: template %s: %w", kind, t.paths[lang][kind], err)
			}
			fallback = errors.Join(fallback, fmt.Errorf("message %s: template %s: %w: %w", kind, t.paths[lang][kind], ErrFallback, err))
		}
		if lang == EN {
			m.EN = tidy(out.String())
		} else {
			m.IT = tidy(out.String())
		}
	}
	return m, fallback
}

// fits checks that data is the type kind needs, not a nil pointer, and
// that its gap is of a kind the template knows.
func fits(kind Kind, data any) error {
	var gap *Gap
	want := ""
	switch d := data.(type) {
	case Reminder:
		gap, want = &d.Gap, "Reminder"
	case *Reminder:
		if d != nil {
			gap = &d.Gap
		}
		want = "Reminder"
	case Escalation:
		gap, want = &d.Gap, "Escalation"
	case *Escalation:
		if d != nil {
			gap = &d.Gap
		}
		want = "Escalation"
	case Resolved:
		gap, want = &d.Gap, "Resolved"
	case *Resolved:
		if d != nil {
			gap = &d.Gap
		}
		want = "Resolved"
	case Advice:
		want = "Advice"
	case *Advice:
		if d == nil {
			return errors.New("nil *Advice")
		}
		want = "Advice"
	default:
		return fmt.Errorf("data of type %T is not a Reminder, Escalation, Resolved or Advice", data)
	}
	if want != "Advice" && gap == nil {
		return fmt.Errorf("nil *%s", want)
	}
	var need string
	switch kind {
	case KindReminderCIG, KindReminderContribution:
		need = "Reminder"
	case KindEscalation:
		need = "Escalation"
	case KindResolved:
		need = "Resolved"
	case KindAdvice:
		need = "Advice"
	default:
		return errors.New("unknown kind")
	}
	if want != need {
		return fmt.Errorf("needs a %s, got %T", need, data)
	}
	if gap == nil {
		return nil
	}
	switch {
	case kind == KindReminderCIG && gap.Kind != events.KindCIG,
		kind == KindReminderContribution && gap.Kind != events.KindContribution:
		return fmt.Errorf("gap of kind %q does not fit", gap.Kind)
	case gap.Kind != events.KindCIG && gap.Kind != events.KindContribution:
		return fmt.Errorf("gap of unknown kind %q", gap.Kind)
	case gap.Kind == events.KindContribution && gap.Operator == nil:
		return errors.New("contribution gap without its operator")
	}
	return nil
}

// tidy trims the trailing spaces of every line, shrinks runs of blank
// lines to one and drops leading and trailing blank lines.
func tidy(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	out := lines[:0]
	blank := true // drops leading blank lines
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			if !blank {
				out = append(out, l)
			}
			blank = true
			continue
		}
		out = append(out, l)
		blank = false
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return strings.Join(out, "\n")
}
