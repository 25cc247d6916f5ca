package message

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// euroIT is an amount written the Italian way.
var euroIT = regexp.MustCompile(`[0-9] €`)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden renders every built-in sample of every kind in both languages
// and compares the text with testdata/golden/<kind>.<sample>.<lang>.txt.
func TestGolden(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, kind := range Kinds {
		if len(samples[kind]) == 0 {
			t.Errorf("kind %s has no sample", kind)
		}
		for _, s := range samples[kind] {
			t.Run(string(kind)+"/"+s.name, func(t *testing.T) {
				m, err := texts.Render(kind, s.data)
				if err != nil {
					t.Fatal(err)
				}
				for _, lt := range []struct {
					lang Lang
					text string
				}{{IT, m.IT}, {EN, m.EN}} {
					checkText(t, lt.lang, lt.text)
					name := string(kind) + "." + s.name + "." + string(lt.lang) + ".txt"
					seen[name] = true
					path := filepath.Join("testdata", "golden", name)
					if *update {
						if err := os.WriteFile(path, []byte(lt.text+"\n"), 0o644); err != nil {
							t.Fatal(err)
						}
						continue
					}
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run go test ./message -update)", err)
					}
					if got := lt.text + "\n"; got != string(want) {
						t.Errorf("%s differs (run go test ./message -update and review the diff)\n--- got\n%s--- want\n%s", path, got, want)
					}
				}
			})
		}
	}
	// A golden file no sample writes any more is stale.
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "digest.") {
			continue // TestGoldenDigest's
		}
		if !seen[filepath.Base(f)] {
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s: stale golden file, no sample writes it (run go test ./message -update)", f)
		}
	}
}

// checkText checks the rules every text follows whatever its data.
func checkText(t *testing.T, lang Lang, text string) {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimRight(line, " \t") != line {
			t.Errorf("%s line %d has trailing spaces: %q", lang, i+1, line)
		}
		if strings.Contains(line, "  ") {
			t.Errorf("%s line %d has a double space: %q", lang, i+1, line)
		}
		if strings.HasPrefix(line, " ") {
			t.Errorf("%s line %d starts with a space: %q", lang, i+1, line)
		}
	}
	if strings.Contains(text, "\n\n\n") {
		t.Errorf("%s: more than one blank line in a row", lang)
	}
	for _, bad := range []string{
		"<no value>", "0,00 €", "€0.00", "01/01/0001", "1 January 0001",
		"(payments)", "(smartcig)", " payments ", " smartcig ", " simog ", " pcp ", " fvoe ",
		"sollecito n.", "Sollecito n. 1\n", "Reminder no. 1\n", " .", " ,",
	} {
		if strings.Contains(text, bad) {
			t.Errorf("%s text contains %q:\n%s", lang, bad, text)
		}
	}
	if lang == EN {
		if euroIT.MatchString(text) {
			t.Errorf("EN text has an amount in the Italian format:\n%s", text)
		}
		// ANAC's notice is quoted as ANAC wrote it, in Italian.
		prose := regexp.MustCompile(`(?m)^ANAC notice \(in Italian\): .*$`).ReplaceAllString(text, "")
		for _, it := range []string{"alle ore", "Gentile", "Spett.le", "Sollecito", "Stazione appaltante"} {
			if strings.Contains(prose, it) {
				t.Errorf("EN text contains the Italian %q:\n%s", it, text)
			}
		}
	}
}
