package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/promemoria/promemoria/message"
)

// lang is a language of the console: it or en.
type lang string

const (
	langIT lang = "it"
	langEN lang = "en"
)

// langs lists the console's languages, Italian first.
var langs = []lang{langIT, langEN}

// negotiate returns the language of a request: ?lang= if it names one, else
// the first of Accept-Language the console speaks (by quality), else
// Italian. explicit reports whether ?lang= chose it.
func negotiate(r *http.Request) (l lang, explicit bool) {
	if q := strings.ToLower(r.URL.Query().Get("lang")); q == string(langIT) || q == string(langEN) {
		return lang(q), true
	}
	best, bestQ := langIT, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if (primary == string(langIT) || primary == string(langEN)) && q > bestQ {
			best, bestQ = lang(primary), q
		}
	}
	return best, false
}

// labels holds every text of the console: Italian in the formal register
// of the public administration, and English mirroring it.
var labels = map[string][2]string{
	"app":             {"promemoria", "promemoria"},
	"tagline":         {"Pendenze derivanti dai disservizi ANAC", "Gaps left by ANAC outages"},
	"nav.services":    {"Servizi ANAC", "ANAC services"},
	"nav.gaps":        {"Pendenze", "Gaps"},
	"nav.tender":      {"Gara", "Tender"},
	"nav.activity":    {"Attività", "Activity"},
	"nav.main":        {"Navigazione principale", "Main navigation"},
	"lang.switch":     {"Lingua", "Language"},
	"skip":            {"Vai al contenuto", "Skip to content"},
	"now":             {"Ora di riferimento", "Reference time"},
	"refresh":         {"Aggiornamento automatico", "Automatic refresh"},
	"none":            {"—", "—"},
	"yes":             {"sì", "yes"},
	"no":              {"no", "no"},
	"error.title":     {"Errore", "Error"},
	"error.state":     {"Lo stato non è al momento leggibile. Riprovare tra qualche istante.", "The state cannot be read at the moment. Please try again shortly."},
	"error.notfound":  {"Pagina non trovata.", "Page not found."},
	"error.badquery":  {"Richiesta non valida", "Invalid request"},
	"filter.apply":    {"Applica i filtri", "Apply filters"},
	"filter.reset":    {"Azzera i filtri", "Clear filters"},
	"filter.any":      {"Tutti", "All"},
	"filter.legend":   {"Filtri", "Filters"},
	"page.first":      {"Prima pagina", "First page"},
	"page.next":       {"Pagina successiva", "Next page"},
	"page.older":      {"Comunicazioni meno recenti", "Older messages"},
	"page.newest":     {"Più recenti", "Newest"},
	"page.searchback": {"Cerca nelle comunicazioni meno recenti", "Search older messages"},

	"services.title":     {"Stato dei servizi ANAC", "State of the ANAC services"},
	"services.intro":     {"Per ciascun servizio: disponibilità, data dell'ultimo cambio di stato, stabilità (i solleciti partono solo dopo che il servizio è rimasto disponibile per il periodo di assestamento) e interruzioni degli ultimi 90 giorni.", "For each service: availability, time of the last change, stability (reminders go only once the service has stayed up for the settle time) and outages of the last 90 days."},
	"services.down":      {"Servizi non disponibili", "Services down"},
	"services.alldown":   {"%d servizi non disponibili", "%d services down"},
	"services.onedown":   {"1 servizio non disponibile", "1 service down"},
	"services.allup":     {"Tutti i servizi risultano disponibili.", "Every service is up."},
	"services.empty":     {"Nessun servizio è ancora stato segnalato.", "No service has been reported yet."},
	"col.service":        {"Servizio", "Service"},
	"col.state":          {"Stato", "State"},
	"col.since":          {"Dal", "Since"},
	"col.settle":         {"Stabilità", "Stability"},
	"col.timeline":       {"Interruzioni negli ultimi 90 giorni", "Outages in the last 90 days"},
	"col.opengaps":       {"Pendenze aperte", "Open gaps"},
	"svc.up":             {"Disponibile", "Up"},
	"svc.down":           {"Non disponibile", "Down"},
	"svc.neverdown":      {"mai segnalato non disponibile", "never reported down"},
	"svc.settled":        {"Stabile dal %s", "Settled since %s"},
	"svc.settling":       {"In osservazione fino al %s", "Settling until %s"},
	"svc.outage":         {"Interruzione dal %s al %s", "Outage from %s to %s"},
	"svc.ongoing":        {"Interruzione dal %s, in corso", "Outage since %s, ongoing"},
	"svc.outages":        {"%d interruzioni negli ultimi 90 giorni", "%d outages in the last 90 days"},
	"svc.nooutage":       {"Nessuna interruzione negli ultimi 90 giorni", "No outage in the last 90 days"},
	"svc.counting":       {"conteggio in corso", "counting"},
	"svc.countedat":      {"Il numero delle pendenze aperte è aggiornato ogni 15 secondi.", "Open gaps are counted again every 15 seconds."},
	"svc.axis.start":     {"90 giorni fa", "90 days ago"},
	"svc.axis.end":       {"oggi", "today"},
	"gaps.title":         {"Pendenze", "Gaps"},
	"gaps.intro":         {"Lotti privi di CIG e offerte ammesse con riserva in attesa del versamento del contributo ANAC.", "Lots without a CIG and bids admitted with reserve whose ANAC contribution is unpaid."},
	"gaps.empty":         {"Nessuna pendenza corrisponde ai filtri.", "No gap matches the filters."},
	"gaps.order":         {"Elenco in ordine di ultimo aggiornamento; una pendenza aggiornata durante la consultazione si sposta in fondo all'elenco.", "Listed by last update; a gap updated while you page moves to the end of the list."},
	"gaps.more":          {"Ancora circa %d registrazioni da esaminare.", "About %d more records to look at."},
	"gaps.scanned":       {"Esaminate %d registrazioni per questa pagina.", "%d records read for this page."},
	"gaps.partial":       {"Pagina parziale: limite di lettura raggiunto. Proseguire con la pagina successiva.", "Partial page: the reading limit was reached. Go on with the next page."},
	"col.kind":           {"Tipo", "Kind"},
	"col.tender":         {"Gara", "Tender"},
	"col.lot":            {"Lotto", "Lot"},
	"col.operator":       {"Operatore economico", "Economic operator"},
	"col.waiting":        {"In attesa di", "Waiting for"},
	"col.sent":           {"Solleciti inviati", "Reminders sent"},
	"col.next":           {"Prossimo sollecito", "Next reminder"},
	"col.deadline":       {"Scadenza", "Deadline"},
	"col.recipient":      {"Destinatario", "Recipient"},
	"kind.cig":           {"CIG mancante", "Missing CIG"},
	"kind.contribution":  {"Contributo non versato", "Unpaid contribution"},
	"waiting.cig":        {"CIG del lotto", "the lot's CIG"},
	"state.open":         {"Aperte", "Open"},
	"state.all":          {"Tutte, anche chiuse", "All, closed included"},
	"state.service_down": {"Servizio non disponibile", "Service down"},
	"state.settling":     {"Servizio in osservazione", "Service settling"},
	"state.waiting_cig":  {"In attesa del CIG", "Waiting for the CIG"},
	"state.due":          {"Sollecito in partenza", "Reminder due"},
	"state.reminded":     {"Sollecitata", "Reminded"},
	"state.resolved":     {"Regolarizzata", "Resolved"},
	"state.exempt":       {"Esente", "Exempt"},

	"tender.title":         {"Gara", "Tender"},
	"tender.lookup":        {"Identificativo della gara", "Tender id"},
	"tender.show":          {"Mostra", "Show"},
	"tender.notfound":      {"Nessuna gara registrata con l'identificativo indicato.", "No tender is recorded with this id."},
	"tender.ask":           {"Indicare l'identificativo di una gara, oppure selezionarla dall'elenco delle pendenze.", "Give a tender's id, or choose one in the list of gaps."},
	"tender.authority":     {"Stazione appaltante", "Contracting authority"},
	"tender.rup":           {"RUP", "RUP"},
	"tender.published":     {"Pubblicata il", "Published on"},
	"tender.deadline":      {"Termine per le offerte", "Offer deadline"},
	"tender.cancelled":     {"Gara annullata", "Tender cancelled"},
	"tender.lots":          {"Lotti", "Lots"},
	"tender.bids":          {"Offerte ammesse con riserva", "Bids admitted with reserve"},
	"tender.gaps":          {"Pendenze", "Gaps"},
	"tender.outputs":       {"Comunicazioni relative alla gara", "Messages about the tender"},
	"tender.outputs.scope": {"In ordine cronologico; ricerca nelle ultime %d comunicazioni registrate (fino al n. %d).", "In order; searched the latest %d messages recorded (up to no. %d)."},
	"tender.nooutputs":     {"Nessuna comunicazione relativa alla gara nelle comunicazioni esaminate.", "No message about the tender among those searched."},
	"tender.nolots":        {"Nessun lotto registrato.", "No lot recorded."},
	"tender.nobids":        {"Nessuna offerta ammessa con riserva.", "No bid admitted with reserve."},
	"tender.nogaps":        {"Nessuna pendenza.", "No gap."},
	"col.cig":              {"CIG", "CIG"},
	"col.cigservice":       {"Servizio di rilascio del CIG", "CIG issued by"},
	"col.amount":           {"Importo a base di gara", "Base amount"},
	"col.admitted":         {"Ammessa il", "Admitted on"},
	"col.regularise":       {"Regolarizzare entro", "Regularise by"},
	"col.paid":             {"Contributo versato", "Contribution paid"},
	"col.receipt":          {"Ricevuta", "Receipt"},
	"cig.pending":          {"in fase di acquisizione", "being acquired"},

	"activity.title":                 {"Attività", "Activity"},
	"activity.intro":                 {"Le comunicazioni più recenti emesse da promemoria: solleciti, proposte di proroga, regolarizzazioni, eventi scartati ed esiti delle consegne.", "The latest messages promemoria emitted: reminders, extension advices, resolutions, dead letters and delivery outcomes."},
	"activity.empty":                 {"Nessuna comunicazione.", "No message."},
	"activity.filter":                {"Tipo di comunicazione", "Kind of message"},
	"col.received":                   {"Data", "Time"},
	"message.recorded":               {"Registrata sul flusso il", "Recorded on the stream on"},
	"by.tender.cig_assigned":         {"CIG acquisito", "CIG acquired"},
	"by.bid.contribution_paid":       {"contributo versato", "contribution paid"},
	"by.tender.cancelled":            {"gara annullata", "tender cancelled"},
	"col.type":                       {"Comunicazione", "Message"},
	"col.detail":                     {"Dettaglio", "Detail"},
	"col.number":                     {"N.", "No."},
	"class.reminder":                 {"Solleciti", "Reminders"},
	"class.advice":                   {"Proposte di proroga", "Extension advices"},
	"class.resolved":                 {"Regolarizzazioni", "Resolutions"},
	"class.deadletter":               {"Eventi scartati", "Dead letters"},
	"class.delivery":                 {"Consegne", "Deliveries"},
	"type.reminder.cig":              {"Sollecito CIG", "CIG reminder"},
	"type.reminder.contribution":     {"Sollecito contributo", "Contribution reminder"},
	"type.reminder.escalation":       {"Segnalazione di scadenza", "Deadline escalation"},
	"type.reminder.resolved":         {"Pendenza regolarizzata", "Gap resolved"},
	"type.advice.deadline_extension": {"Proposta di proroga", "Extension advice"},
	"type.deadletter":                {"Evento scartato", "Dead letter"},
	"type.delivery.sent":             {"Consegna effettuata", "Delivered"},
	"type.delivery.failed":           {"Consegna non riuscita", "Delivery failed"},
	"detail.sequence":                {"sollecito n. %d", "reminder no. %d"},
	"detail.overlap":                 {"sovrapposizione %s; nuovo termine proposto %s", "overlap %s; proposed deadline %s"},
	"detail.after":                   {"dopo %d solleciti", "after %d reminders"},
	"detail.open":                    {"Apri il dettaglio", "Open the detail"},
	"detail.reason":                  {"motivo: %s", "reason: %s"},
	"detail.attempts":                {"%d tentativi", "%d attempts"},

	"message.title":     {"Comunicazione n. %d", "Message no. %d"},
	"message.subject":   {"Soggetto NATS", "NATS subject"},
	"message.id":        {"Identificativo", "Id"},
	"message.time":      {"Data dell'evento", "Event time"},
	"message.text.it":   {"Testo in italiano", "Italian text"},
	"message.text.en":   {"Testo in inglese", "English text"},
	"message.event":     {"Evento completo (CloudEvents JSON)", "Whole event (CloudEvents JSON)"},
	"dead.title":        {"Evento scartato", "Dead letter"},
	"dead.reason":       {"Motivo", "Reason"},
	"dead.error":        {"Errore", "Error"},
	"dead.subject":      {"Soggetto originale", "Original subject"},
	"dead.headers":      {"Intestazioni originali", "Original headers"},
	"dead.size":         {"Dimensione", "Size"},
	"dead.bytes":        {"Byte originali", "Original bytes"},
	"dead.bytes.text":   {"Contenuto originale (come testo)", "Original content (as text)"},
	"dead.bytes.none":   {"Nessun contenuto: il messaggio originale era vuoto.", "No content: the original message was empty."},
	"dead.bytes.binary": {"Il contenuto non è testo UTF-8: scaricare i byte originali.", "The content is not UTF-8 text: download the original bytes."},
	"dead.truncated":    {"Contenuto troncato; SHA-256 dell'originale: %s", "Content truncated; SHA-256 of the original: %s"},
	"dead.download":     {"Scarica i byte originali", "Download the original bytes"},
	"dead.deliveries":   {"Consegne al worker", "Deliveries to the worker"},
	"bytes":             {"%d byte", "%d bytes"},
}

// text returns the label key in l; an unknown key is returned in brackets,
// so that a missing label shows in the page and in the tests.
func text(l lang, key string) string {
	v, ok := labels[key]
	if !ok {
		return "[" + key + "]"
	}
	if l == langEN {
		return v[1]
	}
	return v[0]
}

// textf formats the label key in l with args.
func textf(l lang, key string, args ...any) string { return fmt.Sprintf(text(l, key), args...) }

// serviceName returns a service's public name in l.
func serviceName(l lang, id string) string {
	if l == langEN {
		return message.ServiceName(id, message.EN)
	}
	return message.ServiceName(id, message.IT)
}

// months are the months' short names in English; Italian dates are numeric,
// as the administration writes them.
var monthsEN = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// formatTime writes t in loc: "07/05/2021 09:02" in Italian, "7 May 2021
// 09:02" in English; "—" for the zero time.
func formatTime(l lang, loc *time.Location, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(loc)
	if l == langEN {
		return fmt.Sprintf("%d %s %d %s", t.Day(), monthsEN[t.Month()-1], t.Year(), t.Format("15:04"))
	}
	return t.Format("02/01/2006 15:04")
}

// formatEuro writes cents as "1.234,00 €" in Italian, "€1,234.00" in
// English.
func formatEuro(l lang, cents int64) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	sep, dec := ".", ","
	if l == langEN {
		sep, dec = ",", "."
	}
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(c)
	}
	s := fmt.Sprintf("%s%s%02d", b.String(), dec, cents%100)
	if neg {
		s = "-" + s
	}
	if l == langEN {
		return "€" + s
	}
	return s + " €"
}

// formatSpan writes a duration in days and hours ("2 g 22 h", "2 d 22 h"),
// or minutes when under an hour.
func formatSpan(l lang, d time.Duration) string {
	day := "g"
	if l == langEN {
		day = "d"
	}
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d %s %d h", int(d.Hours())/24, day, int(d.Hours())%24)
}
