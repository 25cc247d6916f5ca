package message

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

// sampleData returns the built-in sample of kind named name.
func sampleData(t *testing.T, kind Kind, name string) any {
	t.Helper()
	for _, s := range samples[kind] {
		if s.name == name {
			return s.data
		}
	}
	t.Fatalf("no sample %s/%s", kind, name)
	return nil
}

// writeTemplate writes dir/<lang>/<kind>.tmpl and returns its path.
func writeTemplate(t *testing.T, dir string, lang Lang, kind Kind, text string) string {
	t.Helper()
	path := filepath.Join(dir, string(lang), string(kind)+".tmpl")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmbeddedTemplates(t *testing.T) {
	for _, lang := range Langs {
		entries, err := embedded.ReadDir("templates/" + string(lang))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(Kinds)+2 {
			t.Errorf("%s: %d embedded templates, want one per kind (%d) and the digest's two", lang, len(entries), len(Kinds))
		}
		for _, kind := range Kinds {
			if _, err := embedded.ReadFile("templates/" + string(lang) + "/" + string(kind) + ".tmpl"); err != nil {
				t.Errorf("%s/%s: %v", lang, kind, err)
			}
		}
	}
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, IT, KindReminderCIG, "{{salutation .RUP}}, acquisisca il CIG del lotto {{.LotID}}.\n")
	base, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := sampleData(t, KindReminderCIG, "first")
	got, err := texts.Render(KindReminderCIG, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.IT != "Gentile Anna Bianchi, acquisisca il CIG del lotto 1." {
		t.Errorf("overridden IT = %q", got.IT)
	}
	want, err := base.Render(KindReminderCIG, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.EN != want.EN {
		t.Errorf("the English template, not overridden, changed:\n%s", got.EN)
	}
	// A kind not overridden keeps its embedded text.
	res := sampleData(t, KindResolved, "contribution_paid")
	got, err = texts.Render(KindResolved, res)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := base.Render(KindResolved, res); got != want {
		t.Errorf("reminder.resolved changed without an override:\n%s", got.IT)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		lang Lang
		kind Kind
		text string
		want []string // in the error, besides the file's path
	}{
		{"parse", EN, KindResolved, "{{if .Passed}}unterminated", []string{"unexpected EOF"}},
		{"unknown function", IT, KindAdvice, "{{nosuchfunc .Deadline}}", []string{`"nosuchfunc" not defined`}},
		{"unknown field", IT, KindReminderContribution, "{{.NoSuchField}}", []string{`sample "first_company"`, "NoSuchField"}},
		// Restored is zero in the "repeat_never_down" sample: a template
		// that writes it without testing it fails at start-up, not on the
		// first repeat.
		{"unguarded date", IT, KindReminderCIG, "Disponibile dal {{datetime .Restored}}.", []string{`sample "repeat_never_down"`, "zero time"}},
		{"field of a nil operator", EN, KindResolved, "{{.Operator.Name}}", []string{`sample "cig_assigned"`}},
		{"empty text", IT, KindEscalation, "{{if false}}x{{end}}\n\n", []string{"empty text"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeTemplate(t, dir, c.lang, c.kind, c.text)
			_, err := Load(dir, nil)
			if err == nil {
				t.Fatal("Load: no error")
			}
			for _, w := range append([]string{"template " + path + ": "}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadDirErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing directory: no error")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "it", "reminder.cgi.tmpl")
	writeTemplate(t, dir, IT, "reminder.cgi", "x")
	_, err := Load(dir, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("misspelt override: error %v, want one naming %s", err, path)
	}
	// Other files are ignored.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err != nil {
		t.Errorf("directory without overrides: %v", err)
	}
}

func TestLocation(t *testing.T) {
	texts, err := Load("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	m, err := texts.Render(KindReminderCIG, sampleData(t, KindReminderCIG, "first"))
	if err != nil {
		t.Fatal(err)
	}
	// 14/05/2021 12:00 in Rome is 10:00 UTC.
	if !strings.Contains(m.IT, "14/05/2021 alle ore 10:00") || !strings.Contains(m.EN, "14 May 2021, 10:00") {
		t.Errorf("dates not in UTC:\n%s\n%s", m.IT, m.EN)
	}
}

func TestRenderData(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := sampleData(t, KindReminderCIG, "first").(Reminder)
	byValue, err := texts.Render(KindReminderCIG, r)
	if err != nil {
		t.Fatal(err)
	}
	byPointer, err := texts.Render(KindReminderCIG, &r)
	if err != nil || byPointer != byValue {
		t.Errorf("by pointer: %v, %v", byPointer, err)
	}
	contribution := sampleData(t, KindReminderContribution, "first_company").(Reminder)
	noOperator := contribution
	noOperator.Operator = nil
	for _, c := range []struct {
		name string
		kind Kind
		data any
	}{
		{"unknown kind", "reminder.other", r},
		{"wrong type", KindEscalation, r},
		{"not a message datum", KindReminderCIG, "hello"},
		{"nil pointer", KindReminderCIG, (*Reminder)(nil)},
		{"nil advice", KindAdvice, (*Advice)(nil)},
		{"nil", KindAdvice, nil},
		{"CIG gap as contribution reminder", KindReminderContribution, r},
		{"contribution gap as CIG reminder", KindReminderCIG, contribution},
		{"contribution gap without operator", KindReminderContribution, noOperator},
		{"gap without kind", KindEscalation, Escalation{Gap: Gap{LotID: "1"}}},
	} {
		if _, err := texts.Render(c.kind, c.data); err == nil {
			t.Errorf("%s: no error", c.name)
		} else if !strings.Contains(err.Error(), string(c.kind)) {
			t.Errorf("%s: error %q does not name the kind", c.name, err)
		}
	}
}

// TestDefects checks, on the built-in samples, the rules of issue 8's
// defect list 4, so that a careless -update cannot bring a defect back.
func TestDefects(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	render := func(kind Kind, name string) events.Message {
		t.Helper()
		m, err := texts.Render(kind, sampleData(t, kind, name))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	has := func(what, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, text)
			}
		}
	}
	hasNot := func(what, text string, bad ...string) {
		t.Helper()
		for _, b := range bad {
			if strings.Contains(text, b) {
				t.Errorf("%s contains %q:\n%s", what, b, text)
			}
		}
	}

	first := render(KindReminderContribution, "first_company")
	has("company reminder", first.IT, "Promemoria – versamento del contributo ANAC\n", "Spett.le Edilstrade S.r.l.,",
		"Stazione appaltante: Comune di Borgoalto",
		"«Lavori di manutenzione straordinaria delle strade comunali»", "CIG 918052266A", "35,00 €",
		"con riserva di regolarizzazione della posizione contributiva (versamento del contributo ANAC)",
		"Si invita pertanto codesto operatore economico a versare il contributo di 35,00 € dovuto per il lotto 2",
		"tramite pagoPA", "trasmettere la relativa ricevuta alla stazione appaltante attraverso la piattaforma telematica della gara",
		"Il termine per la regolarizzazione fissato dalla stazione appaltante scade il 12/05/2021 alle ore 12:00",
		"è di nuovo disponibile dal 05/05/2021 alle ore 09:00", "Comunicato ANAC: «", "servizio di pagamento dei contributi (pagoPA)")
	has("company reminder", first.EN, "Reminder – ANAC contribution to be paid\n", "Dear Sir or Madam,", "€35.00",
		"12 May 2021, 12:00", "ANAC notice (in Italian): “")
	hasNot("company reminder", first.IT+first.EN, "Gentile", "Conservi", "(payments)", "Sollecito", "ammissione", "To Edilstrade")

	repeat := render(KindReminderContribution, "repeat_person_amount_unknown")
	if !strings.HasPrefix(repeat.IT, "Sollecito n. 2 – versamento del contributo ANAC\n\n") ||
		!strings.HasPrefix(repeat.EN, "Reminder no. 2 – ANAC contribution to be paid\n\n") {
		t.Errorf("repeat without its heading:\n%s\n%s", repeat.IT, repeat.EN)
	}
	has("person reminder", repeat.IT, "Gentile Giulia Verdi,", "Non è stato possibile determinare automaticamente l'importo", "portale dell'ANAC")
	has("person reminder", repeat.EN, "Dear Giulia Verdi,", "could not be determined automatically")
	hasNot("person reminder", repeat.IT+repeat.EN, "di nuovo disponibile", "available again", "0,00 €", "€0.00", "Spett.le")

	cig := render(KindReminderCIG, "repeat_never_down")
	if !strings.HasPrefix(cig.IT, "Sollecito n. 2 – acquisizione del CIG\n\n") ||
		!strings.HasPrefix(cig.EN, "Reminder no. 2 – CIG to be acquired\n\n") {
		t.Errorf("CIG repeat without its heading:\n%s\n%s", cig.IT, cig.EN)
	}
	hasNot("CIG reminder never down", cig.IT+cig.EN, "di nuovo disponibile", "available again", "smartcig", "sollecito n.")
	has("CIG reminder", cig.IT, "tramite il servizio Smart CIG", "«in fase di acquisizione»", "trasmettere all'ANAC",
		"14/05/2021 alle ore 12:00", "Stazione appaltante: Comune di Borgoalto")
	for _, name := range []string{"first", "repeat_never_down", "minimal"} {
		m := render(KindReminderCIG, name)
		hasNot(name, m.IT+m.EN, "necessario anche agli operatori", "also need the CIG")
	}
	cigFirst := render(KindReminderCIG, "first")
	has("CIG reminder", cigFirst.IT, "Promemoria – acquisizione del CIG\n", "Comunicato ANAC: «Tutti i servizi")
	has("CIG reminder", cigFirst.EN, "Reminder – CIG to be acquired\n", "ANAC notice (in Italian): “Tutti i servizi")
	cigPCP := render(KindReminderCIG, "minimal")
	has("CIG reminder PCP", cigPCP.IT, "tramite la piattaforma di approvvigionamento digitale certificata, interoperante con la Piattaforma dei Contratti Pubblici (PCP)")

	esc := render(KindEscalation, "cig_down")
	has("CIG escalation", esc.IT, "CIG: in fase di acquisizione\n",
		"sospensione o la proroga del termine per la presentazione delle offerte (art. 25, comma 2, terzo periodo, d.lgs. 36/2023)",
		"La Piattaforma dei Contratti Pubblici (PCP) risulta non disponibile dal 21/11/2025 alle ore 08:00.", "Comunicato ANAC: «")
	has("CIG escalation", esc.EN, "Article 25(2), third sentence, of Legislative Decree 36/2023", "CIG: being acquired\n")
	hasNot("CIG escalation", esc.IT+esc.EN, "non ancora acquisito", "not yet acquired\n", "ripristino", "restoration")
	passed2021 := render(KindEscalation, "cig_passed_down_2021")
	has("CIG escalation 2021", passed2021.IT, "È già stato inviato un promemoria.",
		"Si suggerisce di valutare i provvedimenti necessari ad assicurare la regolarità della procedura (art. 79, comma 5-bis, d.lgs. 50/2016), compresa l'eventuale riapertura del termine per la presentazione delle offerte.")
	has("CIG escalation 2021", passed2021.EN, "One reminder has already been sent.")
	passed2025 := render(KindEscalation, "cig_passed_down_2025")
	has("CIG escalation 2025", passed2025.IT,
		"Si suggerisce di valutare le misure necessarie ad assicurare la partecipazione alla gara (art. 25, comma 2, terzo periodo, d.lgs. 36/2023), compresa l'eventuale riapertura del termine per la presentazione delle offerte.")
	for _, name := range []string{"contribution_passed_down", "contribution_waiting_for_cig_down"} {
		m := render(KindEscalation, name)
		hasNot(name, m.IT+m.EN, "art. 25", "Article 25", "art. 79", "Article 79", "offerte", "offers")
		has(name, m.IT, "termine per la regolarizzazione", "Giulia Verdi (C.F. VRDGLI80A41H501S)", "non risulta aver ancora regolarizzato")
		has(name, m.EN, "does not appear to have regularised")
	}
	waiting := render(KindEscalation, "contribution_waiting_for_cig")
	has("waiting for CIG", waiting.IT, "non potrà versare il contributo finché il CIG", "acquisire con urgenza il CIG del lotto 1",
		"CIG: in fase di acquisizione\n")

	cancelled := render(KindResolved, "cig_cancelled")
	has("cancelled", cancelled.IT, "è stata annullata", "Non è pertanto richiesto alcun ulteriore adempimento", "Non saranno inviati ulteriori solleciti.")
	hasNot("cancelled", cancelled.IT+cancelled.EN, "regolarizzat", "regularised")
	paid := render(KindResolved, "contribution_paid")
	has("paid", paid.IT, "Operatore economico: Edilstrade S.r.l. (C.F. 01234567890)", "dovuto da codesto operatore economico per il lotto 2",
		"risulta versato (ricevuta n. 01210000001234567): la verifica e lo scioglimento della riserva restano di competenza della stazione appaltante.")
	has("paid", paid.EN, "appears to have been paid", "checking it and lifting the reservation remain for the contracting authority")
	hasNot("paid", paid.IT, "di 01234567890", "dovuto da Edilstrade", "regolarizzata")
	paidRUP := render(KindResolved, "contribution_paid_rup")
	has("paid to the RUP", paidRUP.IT, "dovuto da Edilstrade S.r.l. (C.F. 01234567890)")
	hasNot("paid to the RUP", paidRUP.IT, "codesto")
	unverified := render(KindResolved, "cig_unverified")
	has("unverified", unverified.IT, "il CIG V00A1B2C3D del lotto 1 è stato acquisito",
		"Non è stato possibile verificarne i caratteri di controllo, poiché per i CIG che iniziano con la lettera «V» l'ANAC non ha pubblicato la regola di calcolo dei caratteri di controllo: si invita a verificarne la correttezza sul portale dell'ANAC.",
		"Qualora non vi si sia già provveduto")
	has("unverified", unverified.EN, "check characters could not be verified", "the letter “V”")
	exempt := render(KindResolved, "exempt")
	has("exempt", exempt.IT, "non è dovuto alcun contributo", "non è richiesto alcun adempimento relativo al contributo")
	unknown := render(KindResolved, "unknown_resolution")
	has("unknown resolution", unknown.IT, "Chiusura del promemoria\n", "Si comunica che il promemoria relativo al CIG del lotto 1 è stato chiuso.")
	has("unknown resolution", unknown.EN, "Reminder closed\n")

	advice := render(KindAdvice, "two_outages")
	has("advice", advice.IT, "4 giorni e 2 ore", "01/12/2025 alle ore 14:00",
		"ottenuto prorogando il termine attuale di un periodo pari alla durata della sovrapposizione e spostato al primo giorno non festivo successivo.",
		"il periodo di presentazione delle offerte (dal 10/11/2025 alle ore 09:00 al 26/11/2025 alle ore 12:00)",
		"Piattaforma dei Contratti Pubblici (PCP): dal 21/11/2025 alle ore 08:00 al 25/11/2025 alle ore 08:00",
		"Servizio di pagamento dei contributi (pagoPA): il 20/11/2025 dalle ore 16:00 alle ore 18:00",
		"Ai sensi dell'art. 25, comma 2, terzo periodo, d.lgs. 36/2023, in caso di comprovato malfunzionamento, pur se temporaneo, delle piattaforme, la stazione appaltante assicura la partecipazione alla gara,",
		"Si tratta di una proposta")
	has("advice", advice.EN, "4 days and 2 hours", "1 December 2025, 14:00", "Article 25(2), third sentence, of Legislative Decree 36/2023")
	hasNot("advice", advice.IT, "lavorativo", "aumentato")
	advice2021 := render(KindAdvice, "overlapping_outages_2021")
	has("advice 2021", advice2021.IT,
		"Ai sensi dell'art. 79, comma 5-bis, d.lgs. 50/2016, in caso di mancato funzionamento o malfunzionamento dei mezzi di comunicazione elettronici")
	hasNot("advice 2021", advice2021.IT, "spostato", "36/2023")
	minimal := render(KindAdvice, "minimal")
	has("advice without basis", minimal.IT, "Ai sensi dell'art. 25, comma 2, terzo periodo, d.lgs. 36/2023")
	for _, m := range []events.Message{advice, advice2021, minimal} {
		has("advice", m.IT, "In caso di proroga, si raccomanda di darne tempestiva pubblicità e di consentire agli operatori economici che abbiano già presentato l'offerta di ritirarla ed eventualmente sostituirla.",
			"Si invita a valutare se le interruzioni elencate abbiano effettivamente inciso sulla presentazione delle offerte.")
	}
}

func TestRenderConcurrent(t *testing.T) {
	texts, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, kind := range Kinds {
				for _, s := range samples[kind] {
					if _, err := texts.Render(kind, s.data); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestOverrideFallsBack checks that an override which fails on real data
// (a branch no sample reaches) gives way to the embedded template, and
// that Render says so with ErrFallback beside a complete message.
func TestOverrideFallsBack(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, IT, KindReminderCIG, "{{if eq .LotID \"rotto\"}}{{.NoSuchField}}{{end}}Lotto {{.LotID}}.\n")
	texts, err := Load(dir, nil)
	if err != nil {
		t.Fatalf("the override's broken branch is not reached by the samples, Load must accept it: %v", err)
	}
	base, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := sampleData(t, KindReminderCIG, "first").(Reminder)
	if got, err := texts.Render(KindReminderCIG, data); err != nil || got.IT != "Lotto 1." {
		t.Fatalf("the override on good data: %q, %v", got.IT, err)
	}
	data.LotID = "rotto"
	got, err := texts.Render(KindReminderCIG, data)
	if !errors.Is(err, ErrFallback) || !strings.Contains(err.Error(), filepath.Join(dir, "it", "reminder.cig.tmpl")) {
		t.Fatalf("Render on data the override cannot write: %v, want ErrFallback naming the file", err)
	}
	want, _ := base.Render(KindReminderCIG, data)
	if got != want || got.IT == "" {
		t.Errorf("fallback text %q, want the embedded one %q", got.IT, want.IT)
	}
}
