package delivery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/delivery"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

// received is one e-mail as the SMTP server got it.
type received struct {
	from  string
	rcpts []string
	msg   *mail.Message
	body  string
}

// mailbox is a real SMTP server (emersion/go-smtp) in the test process
// that keeps what it receives. reject, when set, is the reply to every
// RCPT TO.
type mailbox struct {
	mu     sync.Mutex
	mails  []received
	reject *smtp.SMTPError
	srv    *smtp.Server
	addr   string
	// delay, when set, holds DATA that long before accepting it.
	delay time.Duration
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{box: b}, nil }

type session struct {
	box   *mailbox
	from  string
	rcpts []string
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.box.mu.Lock()
	rej := s.box.reject
	s.box.mu.Unlock()
	if rej != nil {
		return rej
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	if s.box.delay > 0 {
		time.Sleep(s.box.delay)
	}
	s.box.mu.Lock()
	s.box.mails = append(s.box.mails, received{from: s.from, rcpts: s.rcpts, msg: m, body: string(body)})
	s.box.mu.Unlock()
	return nil
}

// newMailbox returns a mailbox on a free port of 127.0.0.1, not yet
// listening.
func newMailbox(t *testing.T) *mailbox {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return &mailbox{addr: addr}
}

// start listens; the server stops with the test.
func (b *mailbox) start(t *testing.T) {
	t.Helper()
	srv := smtp.NewServer(b)
	srv.Addr, srv.Domain, srv.AllowInsecureAuth = b.addr, "mx.test", true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var ln net.Listener
	var err error
	natstest.WaitFor(t, 5*time.Second, "the SMTP port to be free", func() bool {
		ln, err = net.Listen("tcp", b.addr)
		return err == nil
	})
	b.srv = srv
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func (b *mailbox) all() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.mails...)
}

func (b *mailbox) count() int { return len(b.all()) }

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a real nats-server with the output stream the worker provisions.
type env struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	texts *message.Texts
	subj  events.Subjects
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.Provision(ctx, js, worker.Options{}); err != nil {
		t.Fatal(err)
	}
	texts, err := message.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, js: js, texts: texts, subj: events.Subjects{Prefix: events.DefaultPrefix}}
}

// stage starts a delivery stage with o (fast retries unless set), stopped
// with the test.
func (e *env) stage(t *testing.T, o delivery.Options) (*delivery.Stage, context.CancelFunc) {
	t.Helper()
	if o.Backoff == 0 {
		o.Backoff, o.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	o.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := delivery.New(ctx, e.nc, o)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	stopped := false
	stopFn := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stopFn)
	natstest.WaitFor(t, 10*time.Second, "the stage to be ready", s.Ready)
	return s, stopFn
}

func smtpOpts(b *mailbox) *delivery.SMTPOptions {
	return &delivery.SMTPOptions{URL: "smtp://" + b.addr, From: "Promemoria gare <promemoria@comune.esempio.it>", ReplyTo: "ufficio.gare@comune.esempio.it"}
}

var (
	rup      = events.Person{Name: "Maria Rossi", Email: "maria.rossi@comune.esempio.it"}
	operator = &events.Operator{FiscalCode: "01234567897", Name: "Edilnord S.r.l.", Email: "gare@pec.edilnord.it"}
	comune   = &events.Authority{FiscalCode: "80012345676", Name: "Comune di Esempio"}
)

// cigReminder is a reminder.cig for lot of tender 2021/0042, its text
// written by the real templates.
func (e *env) cigReminder(t *testing.T, lot string) events.Reminder {
	t.Helper()
	deadline := time.Date(2021, 5, 20, 10, 0, 0, 0, time.UTC)
	text, err := e.texts.Render(message.KindReminderCIG, message.Reminder{
		Gap: message.Gap{
			Tender: message.Tender{ID: "2021/0042", Title: "Lavori di adeguamento sismico della scuola primaria G. Rodari", Authority: comune.Name, RUP: rup},
			Kind:   events.KindCIG, LotID: lot, Service: "simog", Deadline: deadline,
		},
		Sequence: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return events.Reminder{
		ReminderID: "rem-cig-lot-" + lot, Kind: events.KindCIG, TenderID: "2021/0042",
		TenderTitle: "Lavori di adeguamento sismico della scuola primaria G. Rodari", Authority: comune,
		LotID: lot, Recipient: rup, Sequence: 1, Service: "simog", ServiceUp: true,
		Deadline: deadline, GapOpenedAt: time.Date(2021, 5, 4, 7, 0, 0, 0, time.UTC), Message: text,
	}
}

// contributionReminder is a reminder.contribution to the bidder, the RUP
// in copy.
func (e *env) contributionReminder(t *testing.T) events.Reminder {
	t.Helper()
	text, err := e.texts.Render(message.KindReminderContribution, message.Reminder{
		Gap: message.Gap{
			Tender: message.Tender{ID: "2021/0042", Title: "Lavori di adeguamento sismico della scuola primaria G. Rodari", Authority: comune.Name, RUP: rup},
			Kind:   events.KindContribution, LotID: "1", CIG: "918052266A", Operator: operator, Service: "payments",
			AmountCents: 3500, AmountKnown: true, ContributionTable: "anac-2021",
		},
		Sequence: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return events.Reminder{
		ReminderID: "rem-contribution-1", Kind: events.KindContribution, TenderID: "2021/0042", Authority: comune,
		LotID: "1", CIG: "918052266A", OperatorFiscalCode: operator.FiscalCode, Operator: operator,
		Recipient: events.Person{Name: operator.Name, Email: operator.Email}, CC: []events.Person{rup},
		Sequence: 1, Service: "payments", ServiceUp: true, ContributionCents: 3500, ContributionTable: "anac-2021",
		GapOpenedAt: time.Date(2021, 5, 4, 14, 0, 0, 0, time.UTC), Message: text,
	}
}

// publish publishes an output event as the worker does: a CloudEvent with
// Nats-Msg-Id, acknowledged by the output stream.
func (e *env) publish(t *testing.T, typ events.Type, id string, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(events.Envelope{
		SpecVersion: "1.0", ID: id, Source: "promemoria", Type: typ, Time: time.Now().UTC(),
		DataContentType: events.ContentType, Data: raw,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(t, e.subj.Of(typ), id, body)
}

func (e *env) publishRaw(t *testing.T, subject, id string, body []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = body
	if id != "" {
		msg.Header.Set(events.HeaderMsgID, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// report is a delivery event read back from the output stream.
type report struct {
	typ  events.Type
	id   string
	data events.Delivery
}

// reports reads every delivery event on the output stream.
func (e *env) reports(t *testing.T) []report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, delivery.OutputStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{e.subj.Prefix + ".delivery.>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []report
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var env events.Envelope
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				t.Fatal(err)
			}
			var d events.Delivery
			if err := json.Unmarshal(env.Data, &d); err != nil {
				t.Fatal(err)
			}
			if m.Headers().Get(events.HeaderMsgID) != env.ID || env.ID != d.DeliveryID {
				t.Errorf("delivery event id %q, Nats-Msg-Id %q, delivery_id %q: want them equal", env.ID, m.Headers().Get(events.HeaderMsgID), d.DeliveryID)
			}
			out = append(out, report{typ: env.Type, id: env.ID, data: d})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

// settled reports whether the stage's consumer has nothing left: every
// message delivered to it acknowledged.
func (e *env) settled(t *testing.T) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.js.Consumer(ctx, delivery.OutputStream, delivery.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending == 0 && info.NumPending == 0
}

func header(r received, name string) string { return r.msg.Header.Get(name) }

// parts returns the text of each MIME part of the e-mail, by media type
// (text/plain, text/html), decoded.
func parts(t *testing.T, r received) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(h textproto.MIMEHeader, body io.Reader)
	walk = func(h textproto.MIMEHeader, body io.Reader) {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			t.Fatalf("Content-Type %q: %v", h.Get("Content-Type"), err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		out[mt] += string(b)
	}
	walk(textproto.MIMEHeader(r.msg.Header), strings.NewReader(r.body))
	return out
}

// subject decodes the e-mail's Subject.
func subject(t *testing.T, r received) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(header(r, "Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
