package message

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promemoria/promemoria/events"
)

// TestGoldenDigest writes the e-mail of every digest sample and compares
// it with testdata/golden/digest.<sample>.txt (the subject, a blank line,
// the text part) and digest.<sample>.html (the HTML part).
func TestGoldenDigest(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range digestSamples {
		t.Run(s.name, func(t *testing.T) {
			d := s.data.(Digest)
			m, err := texts.Mail(d)
			if err != nil {
				t.Fatal(err)
			}
			if m.HTML == "" {
				t.Fatal("a digest has no HTML part")
			}
			it, en, ok := strings.Cut(m.Text, EnglishSeparator)
			if !ok {
				t.Fatalf("text has no English section:\n%s", m.Text)
			}
			checkText(t, IT, strings.TrimSpace(it))
			checkText(t, EN, strings.TrimSpace(strings.TrimPrefix(en, "\n")))
			for _, item := range d.Items {
				if !strings.Contains(m.Text, item.Text.IT) || !strings.Contains(m.Text, item.Text.EN) {
					t.Errorf("the digest does not quote the text of %s lot %s in full", item.TenderID, item.LotID)
				}
				if !strings.Contains(m.HTML, "<td>"+item.LotID+"</td>") {
					t.Errorf("the HTML table has no row for lot %q", item.LotID)
				}
			}
			for name, got := range map[string]string{
				"digest." + s.name + ".txt":  "Subject: " + m.Subject + "\n\n" + m.Text,
				"digest." + s.name + ".html": m.HTML,
			} {
				seen[name] = true
				path := filepath.Join("testdata", "golden", name)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./message -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs (run go test ./message -update and review the diff)\n--- got\n%s--- want\n%s", path, got, want)
				}
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "digest.*"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s: stale golden file, no digest sample writes it", f)
		}
	}
}

func TestMailSingle(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	item := digestCIG("1", 2)
	m, err := texts.Mail(Digest{Recipient: sampleRUP, Items: []DigestItem{item}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[promemoria] Sollecito n. 2: CIG da integrare – rif. 2021/045, lotto 1 – Comune di Borgoalto"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	if m.HTML != "" {
		t.Error("a single reminder has an HTML part")
	}
	if !strings.HasPrefix(m.Text, item.Text.IT+"\n\n"+EnglishSeparator+"\n\n"+item.Text.EN) {
		t.Errorf("text is not Italian then English:\n%s", m.Text)
	}
}

func TestSubject(t *testing.T) {
	three := digestSamples[0].data.(Digest).Items
	for _, c := range []struct {
		items []DigestItem
		want  string
	}{
		{three, "[promemoria] 3 solleciti: CIG da integrare – Comune di Borgoalto"},
		{digestSamples[1].data.(Digest).Items, "[promemoria] 3 comunicazioni – Comune di Borgoalto"},
		{digestSamples[3].data.(Digest).Items, "[promemoria] 2 comunicazioni"},
		{[]DigestItem{{Type: events.TypeAdviceExtension, TenderID: "T\n1", Authority: "Comune\r\ndi X"}}, "[promemoria] Proposta di proroga del termine – rif. T 1 – Comune di X"},
	} {
		if got := Subject(c.items); got != c.want {
			t.Errorf("Subject = %q, want %q", got, c.want)
		}
	}
}

func TestDigestOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "it"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A template that fails on data the samples do not have: the embedded
	// one writes the e-mail.
	if err := os.WriteFile(filepath.Join(dir, "it", "digest.tmpl"), []byte(`{{if eq (len .Items) 7}}{{.Nope}}{{end}}Riepilogo: {{len .Items}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	texts, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := digestSamples[0].data.(Digest)
	m, err := texts.Mail(d)
	if err != nil || !strings.HasPrefix(m.Text, "Riepilogo: 3") {
		t.Fatalf("override: %v\n%s", err, m.Text)
	}
	for len(d.Items) < 7 {
		d.Items = append(d.Items, d.Items[0])
	}
	m, err = texts.Mail(d)
	if !errors.Is(err, ErrFallback) || !strings.HasPrefix(m.Text, "Riepilogo di 7 comunicazioni") {
		t.Errorf("failing override: err %v, text:\n%s", err, m.Text)
	}
	// A broken one stops Load, naming the file.
	if err := os.WriteFile(filepath.Join(dir, "it", "digest.html"), []byte(`{{if}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "it", "digest.html")) {
		t.Errorf("broken digest.html: %v", err)
	}
}
