package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

// The fixture's tenders: one waits for Smart CIG, which is down; the other,
// on PCP (up), has a hostile title, a reminder, a bid waiting for the CIG
// and a mistyped CIG that was dead-lettered.
const (
	quietTender   = "VALF-2026-001"
	hostileTender = "HOST-2026/7"
	hostileTitle  = `<script>window.__pwned=1</script>Fornitura <b>urgente</b> & "DPI"`
	badCIG        = "Z3B3885F49"
)

// fixture is a running promemoria with the console, and what a test
// published to it.
type fixture struct {
	app  *app.App
	base string
	js   jetstream.JetStream
	// deadLetter is the sequence of the dead letter on the output stream,
	// and input the bytes that were refused.
	deadLetter uint64
	input      []byte
}

// startFixture starts promemoria (embedded NATS, console on a free
// loopback port, settle 0s, reminders at any hour), publishes the story
// and waits until every effect is visible.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	cfg, err := config.Load("serve", []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--settle", "0s", "--office-hours", "always"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	nc, err := nats.Connect(a.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{app: a, base: "http://" + a.HTTPAddr(), js: js}

	now := time.Now().UTC()
	f.publish(t, events.TypePortalDown, "down-1", events.PortalChange{Services: []string{"smartcig"}, At: now.Add(-3 * time.Hour), Notice: "Smart CIG non disponibile"})
	rup := events.Person{Name: "Ing. Laura Bianchi", Email: "laura.bianchi@comune.example.it"}
	f.publish(t, events.TypeTenderPublished, "pub-1", events.TenderPublished{
		TenderID: quietTender, Title: "Manutenzione del verde pubblico", RUP: rup,
		Authority:   events.Authority{FiscalCode: "80001230125", Name: "Comune di Valfiorita"},
		PublishedAt: now.Add(-2 * time.Hour), OfferDeadline: now.Add(20 * 24 * time.Hour),
		Lots: []events.Lot{{LotID: "1", CIGService: "smartcig", BaseAmountCents: 35_000_00}},
	})
	f.publish(t, events.TypeTenderPublished, "pub-2", events.TenderPublished{
		TenderID: hostileTender, Title: hostileTitle, RUP: events.Person{Name: "Dott. Marco Rossi", Email: "rup@asp.example.it"},
		Authority:   events.Authority{FiscalCode: "01122334455", Name: `ASP <img src=x onerror="window.__pwned=2">`},
		PublishedAt: now.Add(-2 * time.Hour), OfferDeadline: now.Add(20 * 24 * time.Hour),
		Lots: []events.Lot{{LotID: "1", CIGService: "pcp", BaseAmountCents: 450_000_00}},
	})
	f.publish(t, events.TypeAdmittedWithReserve, "bid-1", events.AdmittedWithReserve{TenderID: hostileTender, LotID: "1",
		Operator: events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l.", Email: "gare@pec.edilstrade.example"}})
	f.input = f.publish(t, events.TypeCIGAssigned, "cig-1", events.CIGAssigned{TenderID: hostileTender, LotID: "1", CIG: badCIG})

	w := a.Worker()
	natstest.WaitFor(t, 30*time.Second, "three open gaps", func() bool {
		p, err := worker.Pending(context.Background(), w.State(), worker.PendingFilter{}, w.Settle(), w.Now())
		return err == nil && len(p) == 3
	})
	natstest.WaitFor(t, 30*time.Second, "the CIG reminder and the dead letter", func() bool {
		var reminded bool
		f.deadLetter, reminded = 0, false
		f.eachOutput(t, func(m *jetstream.RawStreamMsg) {
			switch m.Subject {
			case "procurement.reminder.cig":
				reminded = true
			case "procurement.deadletter":
				f.deadLetter = m.Sequence
			}
		})
		return reminded && f.deadLetter > 0
	})
	return f
}

// publish publishes an input event and returns its bytes.
func (f *fixture) publish(t *testing.T, typ events.Type, id string, data any) []byte {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "console-test", Type: typ, Time: time.Now().UTC(),
		DataContentType: events.ContentType, Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("procurement." + string(typ))
	msg.Data, msg.Header = env, nats.Header{events.HeaderMsgID: []string{id}}
	if _, err := f.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return env
}

// eachOutput calls fn with every message of the output stream.
func (f *fixture) eachOutput(t *testing.T, fn func(m *jetstream.RawStreamMsg)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, worker.StreamOutput)
	if err != nil {
		t.Fatal(err)
	}
	for seq := st.CachedInfo().State.FirstSeq; seq > 0 && seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		fn(m)
	}
}

// missingLabel matches what the console shows for a label it lacks.
var missingLabel = regexp.MustCompile(`\[(?:[a-z_]+\.)+[a-z_]+\]`)

// get fetches a page with the given Accept-Language.
func (f *fixture) get(t *testing.T, path, acceptLanguage string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if m := missingLabel.Find(b); m != nil {
		t.Errorf("%s shows a missing label %s", path, m)
	}
	return resp, string(b)
}
