package message

import "strings"

// Lang is the language of a text.
type Lang string

// The languages every message is written in.
const (
	IT Lang = "it"
	EN Lang = "en"
)

// Langs lists the languages, Italian first.
var Langs = []Lang{IT, EN}

// serviceNames is the one table of the ANAC services' public names: the
// name alone, and the name with its article as it reads inside a sentence
// ("tramite il servizio Smart CIG", "through the Smart CIG service").
var serviceNames = map[string]struct{ it, en, itRef, enRef string }{
	"pcp": {
		"Piattaforma dei Contratti Pubblici (PCP)", "Public Contracts Platform (PCP)",
		"la Piattaforma dei Contratti Pubblici (PCP)", "the Public Contracts Platform (PCP)",
	},
	"smartcig": {"Smart CIG", "Smart CIG", "il servizio Smart CIG", "the Smart CIG service"},
	"simog":    {"SIMOG", "SIMOG", "il servizio SIMOG", "the SIMOG service"},
	"payments": {
		"servizio di pagamento dei contributi (pagoPA)", "contribution payment service (pagoPA)",
		"il servizio di pagamento dei contributi (pagoPA)", "the contribution payment service (pagoPA)",
	},
	"fvoe": {
		"Fascicolo virtuale dell'operatore economico (FVOE)", "operator's virtual dossier (FVOE)",
		"il Fascicolo virtuale dell'operatore economico (FVOE)", "the operator's virtual dossier (FVOE)",
	},
	"bdncp": {
		"Banca dati nazionale dei contratti pubblici (BDNCP)", "National Public Contracts Database (BDNCP)",
		"la Banca dati nazionale dei contratti pubblici (BDNCP)", "the National Public Contracts Database (BDNCP)",
	},
	"ausa": {
		"Anagrafe unica delle stazioni appaltanti (AUSA)", "Register of Contracting Authorities (AUSA)",
		"l'Anagrafe unica delle stazioni appaltanti (AUSA)", "the Register of Contracting Authorities (AUSA)",
	},
}

// ServiceName returns the public name of an ANAC service id in lang; an
// unknown id is returned as is. Any lang other than EN gives the Italian
// name.
func ServiceName(id string, lang Lang) string {
	s, ok := serviceNames[strings.ToLower(strings.TrimSpace(id))]
	if !ok {
		return id
	}
	if lang == EN {
		return s.en
	}
	return s.it
}

// servicePhrase returns the public name of a service with its article, as
// it reads inside a sentence: "il servizio Smart CIG", "la Piattaforma
// dei Contratti Pubblici (PCP)", "the Smart CIG service"; an unknown id gives
// "il servizio <id>" or "the <id> service".
func servicePhrase(id string, lang Lang) string {
	s, ok := serviceNames[strings.ToLower(strings.TrimSpace(id))]
	switch {
	case !ok && lang == EN:
		return "the " + id + " service"
	case !ok:
		return "il servizio " + id
	case lang == EN:
		return s.enRef
	default:
		return s.itRef
	}
}
