package message

import (
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

func TestEuro(t *testing.T) {
	for _, c := range []struct {
		cents  int64
		it, en string
	}{
		{0, "0,00 €", "€0.00"},
		{5, "0,05 €", "€0.05"},
		{3500, "35,00 €", "€35.00"},
		{3300, "33,00 €", "€33.00"},
		{56000, "560,00 €", "€560.00"},
		{123400, "1.234,00 €", "€1,234.00"},
		{123456, "1.234,56 €", "€1,234.56"},
		{100000, "1.000,00 €", "€1,000.00"},
		{99999999, "999.999,99 €", "€999,999.99"},
		{2000000000, "20.000.000,00 €", "€20,000,000.00"},
		{-123456, "-1.234,56 €", "-€1,234.56"},
	} {
		if got := formatEuro(IT, c.cents); got != c.it {
			t.Errorf("euro IT %d = %q, want %q", c.cents, got, c.it)
		}
		if got := formatEuro(EN, c.cents); got != c.en {
			t.Errorf("euro EN %d = %q, want %q", c.cents, got, c.en)
		}
	}
}

func TestDates(t *testing.T) {
	utc := time.UTC
	for _, c := range []struct {
		name                   string
		t                      time.Time
		loc                    *time.Location
		date, datetime, dateEN string
		datetimeEN             string
	}{
		// Summer time: 10:00 UTC is 12:00 in Rome.
		{"DST from UTC", time.Date(2021, 5, 12, 10, 0, 0, 0, utc), rome,
			"12/05/2021", "12/05/2021 alle ore 12:00", "12 May 2021", "12 May 2021, 12:00"},
		// Winter time: 07:00 UTC is 08:00 in Rome.
		{"winter from UTC", time.Date(2025, 11, 21, 7, 0, 0, 0, utc), rome,
			"21/11/2025", "21/11/2025 alle ore 08:00", "21 November 2025", "21 November 2025, 08:00"},
		// The night clocks go forward: 01:30 UTC is 03:30 CEST.
		{"spring forward", time.Date(2021, 3, 28, 1, 30, 0, 0, utc), rome,
			"28/03/2021", "28/03/2021 alle ore 03:30", "28 March 2021", "28 March 2021, 03:30"},
		// Late evening UTC is already the next day in Rome.
		{"next day in Rome", time.Date(2021, 12, 31, 23, 30, 0, 0, utc), rome,
			"01/01/2022", "01/01/2022 alle ore 00:30", "1 January 2022", "1 January 2022, 00:30"},
		// A time given in Rome is written in UTC when loc is UTC.
		{"Rome input, UTC output", time.Date(2021, 5, 12, 12, 0, 0, 0, rome), utc,
			"12/05/2021", "12/05/2021 alle ore 10:00", "12 May 2021", "12 May 2021, 10:00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			it, en := funcMap(IT, c.loc), funcMap(EN, c.loc)
			check := func(f any, want string) {
				t.Helper()
				got, err := f.(func(time.Time, ...string) (string, error))(c.t)
				if err != nil || got != want {
					t.Errorf("got %q, %v; want %q", got, err, want)
				}
			}
			check(it["date"], c.date)
			check(it["datetime"], c.datetime)
			check(en["date"], c.dateEN)
			check(en["datetime"], c.datetimeEN)
		})
	}
	for _, name := range []string{"date", "datetime"} {
		if _, err := funcMap(IT, rome)[name].(func(time.Time, ...string) (string, error))(time.Time{}); err == nil {
			t.Errorf("%s of a zero time: no error", name)
		}
	}
}

func TestDatePreposition(t *testing.T) {
	datetime := funcMap(IT, rome)["datetime"].(func(time.Time, ...string) (string, error))
	date := funcMap(IT, rome)["date"].(func(time.Time, ...string) (string, error))
	dateEN := funcMap(EN, rome)["date"].(func(time.Time, ...string) (string, error))
	for _, c := range []struct {
		f    func(time.Time, ...string) (string, error)
		t    time.Time
		prep []string
		want string
	}{
		{datetime, romeTime(2021, 5, 7, 18, 0), []string{"dal"}, "dal 07/05/2021 alle ore 18:00"},
		{datetime, romeTime(2021, 5, 11, 16, 0), []string{"dal"}, "dall'11/05/2021 alle ore 16:00"},
		{datetime, romeTime(2021, 5, 8, 9, 0), []string{"il"}, "l'08/05/2021 alle ore 09:00"},
		{datetime, romeTime(2021, 5, 8, 9, 0), []string{"Il"}, "L'08/05/2021 alle ore 09:00"},
		{datetime, romeTime(2021, 5, 11, 9, 0), []string{"entro il"}, "entro l'11/05/2021 alle ore 09:00"},
		{date, romeTime(2021, 5, 11, 9, 0), []string{"al"}, "all'11/05/2021"},
		{date, romeTime(2021, 5, 18, 9, 0), []string{"al"}, "al 18/05/2021"},
		{date, romeTime(2021, 5, 1, 9, 0), []string{"dal"}, "dal 01/05/2021"},
		{date, romeTime(2021, 5, 11, 9, 0), []string{"a partire da"}, "a partire da 11/05/2021"},
		{date, romeTime(2021, 5, 11, 9, 0), nil, "11/05/2021"},
		{dateEN, romeTime(2021, 5, 11, 9, 0), []string{"on"}, "on 11 May 2021"},
	} {
		got, err := c.f(c.t, c.prep...)
		if err != nil || got != c.want {
			t.Errorf("%v %q: got %q, %v; want %q", c.t, c.prep, got, err, c.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		it, en string
	}{
		{0, "0 minuti", "0 minutes"},
		{20 * time.Second, "meno di un minuto", "less than a minute"},
		{time.Minute, "1 minuto", "1 minute"},
		{90 * time.Second, "2 minuti", "2 minutes"}, // rounded to the minute
		{time.Hour, "1 ora", "1 hour"},
		{24 * time.Hour, "1 giorno", "1 day"},
		{52 * time.Hour, "2 giorni e 4 ore", "2 days and 4 hours"},
		{3*time.Hour + 20*time.Minute, "3 ore e 20 minuti", "3 hours and 20 minutes"},
		{25*time.Hour + time.Minute, "1 giorno, 1 ora e 1 minuto", "1 day, 1 hour and 1 minute"},
		{4*24*time.Hour + 30*time.Minute, "4 giorni e 30 minuti", "4 days and 30 minutes"},
	} {
		it, err := formatDuration(IT, c.d)
		if err != nil || it != c.it {
			t.Errorf("duration IT %s = %q, %v; want %q", c.d, it, err, c.it)
		}
		en, err := formatDuration(EN, c.d)
		if err != nil || en != c.en {
			t.Errorf("duration EN %s = %q, %v; want %q", c.d, en, err, c.en)
		}
	}
	if _, err := formatDuration(IT, -time.Hour); err == nil {
		t.Error("negative duration: no error")
	}
}

func TestBasis(t *testing.T) {
	for _, c := range []struct{ it, en string }{
		{"art. 79, comma 5-bis, d.lgs. 50/2016", "Article 79(5-bis) of Legislative Decree 50/2016"},
		{"art. 92, comma 2, lett. c), d.lgs. 36/2023", "Article 92(2)(c) of Legislative Decree 36/2023"},
		{"art. 1, comma 65, l. 266/2005", "Article 1(65) of Law 266/2005"},
		{"art. 101, d.lgs. n. 36/2023", "Article 101 of Legislative Decree 36/2023"},
		{"art. 25, comma 1, primo periodo, d.lgs. 36/2023", "Article 25(1), first sentence, of Legislative Decree 36/2023"},
		{"art. 25, comma 2, terzo periodo, d.lgs. 36/2023", "Article 25(2), third sentence, of Legislative Decree 36/2023"},
		{"delibera ANAC 582/2023", "delibera ANAC 582/2023"}, // unreadable: as given
	} {
		if got, err := formatBasis(IT, c.it); err != nil || got != c.it {
			t.Errorf("basis IT %q = %q, %v", c.it, got, err)
		}
		if got, err := formatBasis(EN, c.it); err != nil || got != c.en {
			t.Errorf("basis EN %q = %q, %v; want %q", c.it, got, err, c.en)
		}
	}
	// Art. 25, comma 2, d.lgs. 36/2023 is cited by its third sentence, the
	// one on platform malfunctions, however it is written.
	for _, it := range []string{"art. 25, comma 2, d.lgs. 36/2023", "Art. 25 c.2 D.Lgs. 36/2023", " articolo 25, comma 2, d.lgs. n. 36/2023"} {
		if got, err := formatBasis(IT, it); err != nil || got != "art. 25, comma 2, terzo periodo, d.lgs. 36/2023" {
			t.Errorf("basis IT %q = %q, %v", it, got, err)
		}
		if got, err := formatBasis(EN, it); err != nil || got != "Article 25(2), third sentence, of Legislative Decree 36/2023" {
			t.Errorf("basis EN %q = %q, %v", it, got, err)
		}
	}
	if _, err := formatBasis(EN, " "); err == nil {
		t.Error("empty basis: no error")
	}
}

func TestSalutation(t *testing.T) {
	for _, c := range []struct {
		name      string
		recipient any
		it, en    string
	}{
		{"RUP", events.Person{Name: "Anna Bianchi"}, "Gentile Anna Bianchi", "Dear Anna Bianchi"},
		{"RUP pointer", &events.Person{Name: "Anna Bianchi"}, "Gentile Anna Bianchi", "Dear Anna Bianchi"},
		{"RUP without name", events.Person{}, "Gentile Responsabile", "Dear Sir or Madam"},
		{"company", events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l."}, "Spett.le Edilstrade S.r.l.", "Dear Sir or Madam"},
		{"company pointer", &events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l."}, "Spett.le Edilstrade S.r.l.", "Dear Sir or Madam"},
		{"person operator", &events.Operator{FiscalCode: "VRDGLI80A41H501S", Name: "Giulia Verdi"}, "Gentile Giulia Verdi", "Dear Giulia Verdi"},
		{"person operator lower case", &events.Operator{FiscalCode: " vrdgli80a41h501s ", Name: "Giulia Verdi"}, "Gentile Giulia Verdi", "Dear Giulia Verdi"},
		{"foreign operator", &events.Operator{FiscalCode: "FR12345678901", Name: "Routes SA"}, "Spett.le Routes SA", "Dear Sir or Madam"},
		{"operator without name", &events.Operator{FiscalCode: "01234567890"}, "Spett.le operatore economico", "Dear Sir or Madam"},
		{"nil operator", (*events.Operator)(nil), "Spett.le operatore economico", "Dear Sir or Madam"},
	} {
		it, err := salutation(IT, c.recipient)
		if err != nil || it != c.it {
			t.Errorf("%s: IT %q, %v; want %q", c.name, it, err, c.it)
		}
		en, err := salutation(EN, c.recipient)
		if err != nil || en != c.en {
			t.Errorf("%s: EN %q, %v; want %q", c.name, en, err, c.en)
		}
	}
	if _, err := salutation(IT, "Anna"); err == nil {
		t.Error("salutation of a string: no error")
	}
}

func TestServiceName(t *testing.T) {
	for _, c := range []struct{ id, it, en string }{
		{"pcp", "Piattaforma dei Contratti Pubblici (PCP)", "Public Contracts Platform (PCP)"},
		{"smartcig", "Smart CIG", "Smart CIG"},
		{"simog", "SIMOG", "SIMOG"},
		{"payments", "servizio di pagamento dei contributi (pagoPA)", "contribution payment service (pagoPA)"},
		{"fvoe", "Fascicolo virtuale dell'operatore economico (FVOE)", "operator's virtual dossier (FVOE)"},
		{"bdncp", "Banca dati nazionale dei contratti pubblici (BDNCP)", "National Public Contracts Database (BDNCP)"},
		{"ausa", "Anagrafe unica delle stazioni appaltanti (AUSA)", "Register of Contracting Authorities (AUSA)"},
		{"newservice", "newservice", "newservice"},
	} {
		if got := ServiceName(c.id, IT); got != c.it {
			t.Errorf("ServiceName(%q, IT) = %q, want %q", c.id, got, c.it)
		}
		if got := ServiceName(c.id, EN); got != c.en {
			t.Errorf("ServiceName(%q, EN) = %q, want %q", c.id, got, c.en)
		}
		// The phrase used inside sentences names the same service.
		if p := servicePhrase(c.id, IT); !strings.Contains(p, c.it) {
			t.Errorf("servicePhrase(%q, IT) = %q does not contain %q", c.id, p, c.it)
		}
		if p := servicePhrase(c.id, EN); !strings.Contains(p, c.en) {
			t.Errorf("servicePhrase(%q, EN) = %q does not contain %q", c.id, p, c.en)
		}
	}
}

func TestOperatorAndCapFirst(t *testing.T) {
	op := &events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l."}
	if got, _ := formatOperator(IT, op); got != "Edilstrade S.r.l. (C.F. 01234567890)" {
		t.Errorf("operator IT = %q", got)
	}
	if got, _ := formatOperator(EN, op); got != "Edilstrade S.r.l. (tax code 01234567890)" {
		t.Errorf("operator EN = %q", got)
	}
	if got, _ := formatOperator(IT, &events.Operator{FiscalCode: "01234567890"}); got != "C.F. 01234567890" {
		t.Errorf("operator without name = %q", got)
	}
	if _, err := formatOperator(IT, nil); err == nil {
		t.Error("nil operator: no error")
	}
	for in, want := range map[string]string{"": "", "servizio": "Servizio", "èra": "Èra", "l'Anagrafe": "L'Anagrafe"} {
		if got := capFirst(in); got != want {
			t.Errorf("capFirst(%q) = %q, want %q", in, got, want)
		}
	}
}
