package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

// bus is a real embedded nats-server with JetStream for one test.
type bus struct {
	t   *testing.T
	srv *natsserver.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	out *collector
}

func newBus(t *testing.T) *bus {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv)
	return &bus{t: t, srv: srv, nc: nc, js: js}
}

// testOptions are compressed-time options for tests.
func testOptions(t *testing.T) worker.Options {
	level := zerolog.WarnLevel
	if os.Getenv("PROMEMORIA_TEST_LOG") != "" {
		level = zerolog.DebugLevel
	}
	return worker.Options{
		Policy:      gap.Policy{Settle: time.Second, RepeatInterval: 3 * time.Second, EscalateBefore: 6 * time.Second, Tolerance: time.Second},
		SweepGrace:  2 * time.Second,
		Concurrency: 8,
		AckWait:     5 * time.Second,
		LeaseTTL:    2 * time.Second, // a worker restarted after a crash takes over soon
		Logger:      zerolog.New(zerolog.NewTestWriter(t)).Level(level).With().Timestamp().Logger(),
	}
}

// runningWorker is a worker running in this process.
type runningWorker struct {
	nc     *nats.Conn
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startWorker starts a worker on its own connection (as a separate replica
// would have) and stops it when the test ends.
func (b *bus) startWorker(o worker.Options) *runningWorker {
	b.t.Helper()
	nc, err := nats.Connect(b.srv.ClientURL())
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, nc, o)
	if err != nil {
		cancel()
		b.t.Fatal(err)
	}
	rw := &runningWorker{nc: nc, w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { rw.done <- w.Run(ctx); nc.Close() }()
	waitFor(b.t, 10*time.Second, "worker ready", w.Ready)
	b.t.Cleanup(rw.stop)
	if b.out == nil {
		b.out = b.collect()
	}
	return rw
}

// kill drops the worker's connection at once, as a crash would: what it
// had not acked is redelivered to whoever consumes next.
func (rw *runningWorker) kill() {
	rw.nc.Close()
	rw.stop()
}

func (rw *runningWorker) stop() {
	rw.once.Do(func() {
		rw.cancel()
		select {
		case <-rw.done:
		case <-time.After(30 * time.Second):
		}
	})
}

// publish sends a CloudEvents input with Nats-Msg-Id = id.
func (b *bus) publish(typ events.Type, id string, at time.Time, data any) {
	b.t.Helper()
	b.publishWith(typ, id, at, data, true)
}

func (b *bus) publishWith(typ events.Type, id string, at time.Time, data any, msgID bool) {
	b.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		b.t.Fatal(err)
	}
	env := events.Envelope{SpecVersion: "1.0", ID: id, Source: "test://portal", Type: typ, Time: at.UTC(), DataContentType: "application/json", Data: raw}
	body, _ := json.Marshal(env)
	b.publishRaw(events.Subjects{Prefix: "procurement"}.Of(typ), body, id, msgID)
}

func (b *bus) publishRaw(subject string, body []byte, id string, msgID bool) {
	b.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = body
	if msgID {
		msg.Header.Set(events.HeaderMsgID, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		b.t.Fatalf("publish %s: %v", subject, err)
	}
}

// out is one message of the output stream.
type out struct {
	Seq      uint64
	Subject  string
	Env      events.Envelope
	Reminder *events.Reminder
	Resolved *events.Resolved
	Dead     *events.DeadLetter
	Advice   *events.Advice
	At       time.Time
}

func (o out) String() string {
	switch {
	case o.Reminder != nil:
		return fmt.Sprintf("%s %s/%s/%s seq=%d to=%s", o.Env.Type, o.Reminder.TenderID, o.Reminder.LotID, o.Reminder.OperatorFiscalCode, o.Reminder.Sequence, o.Reminder.Recipient.Email)
	case o.Resolved != nil:
		return fmt.Sprintf("%s %s/%s/%s by=%s", o.Env.Type, o.Resolved.TenderID, o.Resolved.LotID, o.Resolved.OperatorFiscalCode, o.Resolved.Resolution.By)
	case o.Dead != nil:
		return fmt.Sprintf("deadletter %s %s", o.Dead.Reason, o.Dead.Error)
	case o.Advice != nil:
		return fmt.Sprintf("%s %s overlap=%ds proposed=%s", o.Env.Type, o.Advice.TenderID, o.Advice.OverlapSeconds, o.Advice.ProposedDeadline.Format(time.RFC3339))
	}
	return o.Subject
}

// collector reads the output stream from its start with an ordered
// consumer, so it sees exactly what was stored, duplicates included.
type collector struct {
	mu   sync.Mutex
	msgs []out
	t    *testing.T
}

func (b *bus) collect() *collector {
	b.t.Helper()
	c := &collector{t: b.t}
	ctx, cancel := context.WithCancel(context.Background())
	b.t.Cleanup(cancel)
	cons, err := b.js.OrderedConsumer(ctx, worker.StreamOutput, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, _ := m.Metadata()
		o := out{Subject: m.Subject(), At: time.Now()}
		if meta != nil {
			o.Seq = meta.Sequence.Stream
		}
		if err := json.Unmarshal(m.Data(), &o.Env); err != nil {
			c.t.Errorf("output %s is not a CloudEvent: %v", m.Subject(), err)
		}
		switch o.Env.Type {
		case events.TypeReminderResolved:
			o.Resolved = &events.Resolved{}
			_ = json.Unmarshal(o.Env.Data, o.Resolved)
		case events.TypeDeadLetter:
			o.Dead = &events.DeadLetter{}
			_ = json.Unmarshal(o.Env.Data, o.Dead)
		case events.TypeAdviceExtension:
			o.Advice = &events.Advice{}
			_ = json.Unmarshal(o.Env.Data, o.Advice)
		default:
			o.Reminder = &events.Reminder{}
			_ = json.Unmarshal(o.Env.Data, o.Reminder)
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, o)
		c.mu.Unlock()
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cc.Stop)
	return c
}

func (c *collector) all() []out {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// match returns the messages of type typ about tender/lot (and operator,
// if not empty).
func (c *collector) match(typ events.Type, tender, lot, op string) []out {
	var res []out
	for _, o := range c.all() {
		if o.Env.Type != typ {
			continue
		}
		switch {
		case o.Reminder != nil && o.Reminder.TenderID == tender && o.Reminder.LotID == lot && o.Reminder.OperatorFiscalCode == op:
			res = append(res, o)
		case o.Resolved != nil && o.Resolved.TenderID == tender && o.Resolved.LotID == lot && o.Resolved.OperatorFiscalCode == op:
			res = append(res, o)
		}
	}
	return res
}

func (c *collector) deadLetters() []out {
	var res []out
	for _, o := range c.all() {
		if o.Dead != nil {
			res = append(res, o)
		}
	}
	return res
}

// dump logs every output, for failures.
func (c *collector) dump() {
	for _, o := range c.all() {
		c.t.Logf("  #%d %s", o.Seq, o)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	natstest.WaitFor(t, d, what, cond)
}

// checkInvariants asserts that no reminder id appears twice on the output
// stream and that each gap's reminders are numbered 1, 2, 3 … with nothing
// after its resolution.
func checkInvariants(t *testing.T, c *collector) {
	t.Helper()
	seen := map[string]int{}
	type gk struct{ tender, lot, op string }
	seqs := map[gk][]int{}
	resolved := map[gk]bool{}
	for _, o := range c.all() {
		seen[o.Env.ID]++
		switch {
		case o.Reminder != nil && !o.Reminder.Escalation:
			k := gk{o.Reminder.TenderID, o.Reminder.LotID, o.Reminder.OperatorFiscalCode}
			if resolved[k] {
				t.Errorf("reminder after resolution: %s", o)
			}
			seqs[k] = append(seqs[k], o.Reminder.Sequence)
		case o.Resolved != nil:
			resolved[gk{o.Resolved.TenderID, o.Resolved.LotID, o.Resolved.OperatorFiscalCode}] = true
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event id %s emitted %d times", id, n)
		}
	}
	for k, s := range seqs {
		for i, v := range s {
			if v != i+1 {
				t.Errorf("gap %v: sequences %v, want 1..%d", k, s, len(s))
				break
			}
		}
	}
	if t.Failed() {
		c.dump()
	}
}
