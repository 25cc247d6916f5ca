package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/delivery"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver/natstest"
)

// inbox is a real SMTP server (emersion/go-smtp) in the test process.
type inbox struct {
	mu    sync.Mutex
	mails []*mail.Message
	addr  string
}

func (b *inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &inboxSession{b}, nil }

type inboxSession struct{ b *inbox }

func (s *inboxSession) Reset()                               {}
func (s *inboxSession) Logout() error                        { return nil }
func (s *inboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *inboxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *inboxSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.mails = append(s.b.mails, m)
	s.b.mu.Unlock()
	return nil
}

func (b *inbox) all() []*mail.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*mail.Message(nil), b.mails...)
}

func startInbox(t *testing.T) *inbox {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &inbox{addr: ln.Addr().String()}
	srv := smtp.NewServer(b)
	srv.Domain = "mx.test"
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// publishInput publishes an input event on a's NATS.
func publishInput(t *testing.T, url string, typ events.Type, id string, data any) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	raw, _ := json.Marshal(data)
	env, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "test", Type: typ, Time: time.Now().UTC(), Data: raw})
	msg := nats.NewMsg("procurement." + string(typ))
	msg.Data, msg.Header = env, nats.Header{events.HeaderMsgID: []string{id}}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// TestServeDelivers runs the whole service with an SMTP receiver: a
// tender with three lots published without CIG during a PCP outage; once
// PCP is back the worker reminds the three lots and the RUP gets exactly
// one e-mail listing them (and the advice on the offer deadline the
// outage also brings), after digest_wait.
func TestServeDelivers(t *testing.T) {
	box := startInbox(t)
	a := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--settle", "0s",
		"--smtp-url", "smtp://"+box.addr, "--smtp-from", "promemoria@comune.esempio.it", "--digest-wait", "2s"))
	base := "http://" + a.HTTPAddr()
	if code, _ := get(t, base+"/readyz"); code != 200 || a.Delivery() == nil || !a.Delivery().Ready() {
		t.Fatalf("/readyz %d with the delivery stage", code)
	}
	url := a.ClientURL()
	down := time.Now().Add(-time.Hour).UTC()
	publishInput(t, url, events.TypePortalDown, "down-1", events.PortalChange{Services: []string{"pcp"}, At: down})
	publishInput(t, url, events.TypeTenderPublished, "pub-1", events.TenderPublished{
		TenderID: "VALF-2026-014", Title: "Manutenzione del verde pubblico", Authority: events.Authority{FiscalCode: "80012345676", Name: "Comune di Valfiorita"},
		RUP: events.Person{Name: "Laura Bianchi", Email: "laura.bianchi@comune.valfiorita.example"}, PublishedAt: down.Add(time.Minute),
		OfferDeadline: time.Now().Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1"}, {LotID: "2"}, {LotID: "3"}},
	})
	publishInput(t, url, events.TypePortalUp, "up-1", events.PortalChange{Services: []string{"pcp"}, At: time.Now().UTC()})
	natstest.WaitFor(t, 30*time.Second, "one e-mail and nothing held", func() bool {
		return len(box.all()) == 1 && a.Delivery().Metrics().Held() == 0 && a.Delivery().Metrics().Sent() == 1
	})
	m := box.all()[0]
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	// The outage also overlapped the offer period while the lots had no
	// CIG: the RUP's advice travels in the same e-mail.
	var rems int
	for _, id := range strings.Fields(m.Header.Get("X-Promemoria-Ids")) {
		if strings.HasPrefix(id, "rem-") {
			rems++
		}
	}
	raw, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	text := string(raw)
	if subject != "[promemoria] 4 comunicazioni – Comune di Valfiorita" || rems != 3 || !strings.Contains(m.Header.Get("To"), "laura.bianchi@") {
		t.Errorf("subject %q, ids %q, to %q", subject, m.Header.Get("X-Promemoria-Ids"), m.Header.Get("To"))
	}
	for _, lot := range []string{"lotto 1: acquisizione del CIG", "lotto 2: acquisizione del CIG", "lotto 3: acquisizione del CIG", "proposta di proroga"} {
		if !strings.Contains(text, lot) {
			t.Errorf("the e-mail does not list %q:\n%s", lot, text)
		}
	}
	_, body := get(t, base+"/metrics")
	for _, want := range []string{`promemoria_deliveries_total{outcome="sent",receiver="email"} 1`, "promemoria_delivery_queue_depth 0", "promemoria_delivery_latency_seconds_count"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestNotify runs the delivery stage alone next to a serve without
// receivers: it waits for nothing (the stream exists), consumes with its
// own consumer and calls the webhook.
func TestNotify(t *testing.T) {
	a := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "", "--settle", "0s"))
	if a.Delivery() != nil {
		t.Fatal("serve without a receiver runs a delivery stage")
	}
	const secret = "notify-test-secret-0123"
	var mu sync.Mutex
	var calls []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !delivery.Verify(secret, body, r.Header.Get(delivery.SignatureHeader)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		calls = append(calls, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	cfg := load(t, "--nats-url", a.ClientURL(), "--http-listen", "127.0.0.1:0", "--webhook-url", hook.URL, "--webhook-secret", secret)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	n, err := app.StartNotify(context.Background(), cfg, log, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	natstest.WaitFor(t, 10*time.Second, "notify to be ready", func() bool {
		code, _ := get(t, "http://"+n.HTTPAddr()+"/readyz")
		return code == 200
	})
	publishTender(t, a, "e1", "T1", events.Lot{LotID: "1"})
	natstest.WaitFor(t, 20*time.Second, "the webhook call", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 1 && strings.HasPrefix(calls[0], "rem-")
	})
	if code, _ := get(t, "http://"+n.HTTPAddr()+"/v1/pending"); code != 404 {
		t.Errorf("notify serves /v1/pending (%d): it has no worker", code)
	}
	// Without a receiver, notify refuses to start.
	if _, err := app.StartNotify(context.Background(), load(t, "--nats-url", a.ClientURL()), log, app.Options{}); err == nil || !strings.Contains(err.Error(), "receiver") {
		t.Errorf("notify without a receiver: %v", err)
	}
}
