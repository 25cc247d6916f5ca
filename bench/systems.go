package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/worker"
)

// System is what consumes the input stream.
type System string

// The three systems the benchmark compares.
const (
	// Ceiling consumes and acks every input, doing nothing else.
	Ceiling System = "ceiling"
	// Naive is the obvious worker: decode, one KV compare-and-set, one
	// synchronous publish, ack, one message at a time.
	Naive System = "naive"
	// Promemoria is the real worker.
	Promemoria System = "promemoria"
)

// Systems lists them in table order.
var Systems = []System{Ceiling, Naive, Promemoria}

// Consumer returns the durable consumer of the input stream the system
// reads.
func (s System) Consumer() string {
	switch s {
	case Ceiling:
		return "bench-ceiling"
	case Naive:
		return "bench-naive"
	}
	return worker.ConsumerEvent
}

// CeilingMaxAckPending, CeilingBatch and CeilingExpiry configure the
// ceiling's consumer: generous, so that it measures the bus and not a
// setting. A short pull expiry bounds the stall when a pull request is left
// waiting at the ack-pending limit (seen once with 20,000 and the default
// 30 s expiry: the whole run waited 30 s).
const (
	CeilingMaxAckPending = 100_000
	CeilingBatch         = 2_000
	CeilingExpiry        = 2 * time.Second
)

// NaiveBucket is the naive worker's KV bucket; NaiveSubject where it
// publishes (on promemoria's output stream).
const (
	NaiveBucket  = "bench_naive"
	NaiveSubject = Prefix + ".reminder.naive"
)

// instance is one system set up on an environment.
type instance struct {
	sys   System
	env   *Env
	js    jetstream.JetStream
	w     *Worker
	cons  jetstream.Consumer
	cc    jetstream.ConsumeContext
	naive *naiveWorker
	// seen, if set, is told of every input the ceiling consumes.
	seen     func(msgID string, at time.Time)
	consumed atomic.Int64
}

// setup provisions promemoria's streams and buckets on env (every system
// reads the same input stream) and prepares sys without starting it.
func setup(ctx context.Context, env *Env, sys System) (*instance, error) {
	in := &instance{sys: sys, env: env}
	if sys == Promemoria {
		w, err := env.NewWorker(ctx)
		if err != nil {
			return nil, err
		}
		in.w = w
		return in, nil
	}
	js, err := env.JetStream(string(sys))
	if err != nil {
		return nil, err
	}
	in.js = js
	if err := worker.Provision(ctx, js, WorkerOptions(env.Cfg, Logger)); err != nil {
		return nil, err
	}
	// promemoria's own consumers are not used here.
	for _, c := range []struct{ stream, name string }{{worker.StreamEvents, worker.ConsumerEvent}, {worker.StreamTimers, worker.ConsumerTimer}} {
		if err := js.DeleteConsumer(ctx, c.stream, c.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
	}
	in.cons, err = js.CreateOrUpdateConsumer(ctx, worker.StreamEvents, consumerConfig(sys))
	if err != nil {
		return nil, err
	}
	if sys == Naive {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: NaiveBucket, History: 1, Storage: jetstream.FileStorage})
		if err != nil {
			return nil, err
		}
		in.naive = &naiveWorker{js: js, kv: kv, revs: map[string]uint64{}, limits: events.DefaultLimits()}
	}
	return in, nil
}

// consumerConfig is the durable consumer of the input stream of the
// ceiling and of the naive worker.
func consumerConfig(sys System) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable: sys.Consumer(), AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if sys == Ceiling {
		cfg.MaxAckPending = CeilingMaxAckPending
	}
	return cfg
}

// start begins consuming.
func (in *instance) start(ctx context.Context) error {
	switch in.sys {
	case Promemoria:
		in.w.Run()
		return nil
	case Ceiling:
		cc, err := in.cons.Consume(func(m jetstream.Msg) {
			if in.seen != nil {
				in.seen(m.Headers().Get(events.HeaderMsgID), time.Now())
			}
			_ = m.Ack()
			in.consumed.Add(1)
		}, jetstream.PullMaxMessages(CeilingBatch), jetstream.PullExpiry(CeilingExpiry))
		in.cc = cc
		return err
	default:
		it, err := in.cons.Messages()
		if err != nil {
			return err
		}
		in.naive.it = it
		in.naive.done = make(chan struct{})
		go in.naive.run(&in.consumed)
		return nil
	}
}

// stop stops consuming.
func (in *instance) stop() error {
	switch in.sys {
	case Promemoria:
		return in.w.Stop()
	case Ceiling:
		if in.cc != nil {
			in.cc.Drain()
			select {
			case <-in.cc.Closed():
			case <-time.After(10 * time.Second):
			}
		}
	default:
		if in.naive.it != nil {
			in.naive.it.Drain()
			<-in.naive.done
		}
	}
	return nil
}

// naiveWorker is the obvious worker: for each message, decode it, write
// its tender's record with one compare-and-set, publish one message with a
// synchronous publish, ack; one message at a time.
type naiveWorker struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	it     jetstream.MessagesContext
	revs   map[string]uint64
	limits events.Limits
	done   chan struct{}
	mu     sync.Mutex
	errs   []error
}

func (n *naiveWorker) run(count *atomic.Int64) {
	defer close(n.done)
	for {
		msg, err := n.it.Next()
		if err != nil {
			return
		}
		if err := n.handle(msg); err != nil {
			n.mu.Lock()
			n.errs = append(n.errs, err)
			n.mu.Unlock()
			_ = msg.Nak()
			continue
		}
		_ = msg.Ack()
		count.Add(1)
	}
}

func (n *naiveWorker) handle(msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := events.Decode(msg.Data(), Subjects.TypeOf(msg.Subject()), n.limits)
	if err != nil {
		return err
	}
	var out events.Reminder
	key := "svc"
	switch p := ev.Payload.(type) {
	case *events.TenderPublished:
		key, out.TenderID, out.TenderTitle, out.Recipient = p.TenderID, p.TenderID, p.Title, p.RUP
		out.Kind, out.LotID, out.Deadline = events.KindCIG, p.Lots[0].LotID, p.OfferDeadline
	case *events.CIGAssigned:
		key, out.TenderID, out.LotID, out.Kind = p.TenderID, p.TenderID, p.LotID, events.KindCIG
	case *events.TenderCancelled:
		key, out.TenderID = p.TenderID, p.TenderID
	case *events.AdmittedWithReserve:
		key, out.TenderID, out.LotID, out.Kind = p.TenderID, p.TenderID, p.LotID, events.KindContribution
		out.OperatorFiscalCode, out.Operator = p.Operator.FiscalCode, &p.Operator
		out.Recipient = events.Person{Name: p.Operator.Name, Email: p.Operator.Email}
	case *events.ContributionPaid:
		key, out.TenderID, out.LotID, out.Kind = p.TenderID, p.TenderID, p.LotID, events.KindContribution
		out.OperatorFiscalCode = p.OperatorFiscalCode
	}
	// One compare-and-set of the tender's record, at the revision this
	// worker last wrote (it is the only writer); a conflict reloads once.
	key = "naive." + gap.Token(key)
	rev := n.revs[key]
	var nrev uint64
	if rev == 0 {
		nrev, err = n.kv.Create(ctx, key, ev.Data)
	} else {
		nrev, err = n.kv.Update(ctx, key, ev.Data, rev)
	}
	if err != nil {
		e, gerr := n.kv.Get(ctx, key)
		if gerr != nil {
			return fmt.Errorf("naive: %w (reload: %v)", err, gerr)
		}
		if nrev, err = n.kv.Update(ctx, key, ev.Data, e.Revision()); err != nil {
			return fmt.Errorf("naive: %w", err)
		}
	}
	n.revs[key] = nrev
	// One synchronous publish.
	out.ReminderID = "naive-" + ev.ID
	out.Sequence, out.ServiceUp, out.GapOpenedAt = 1, true, ev.Time
	out.Message = events.Message{
		IT: "Promemoria: il servizio ANAC è di nuovo disponibile. Completare l'acquisizione del CIG o la regolarizzazione del contributo per la gara " + out.TenderID + ".",
		EN: "Reminder: the ANAC service is available again. Please obtain the CIG or regularise the contribution for tender " + out.TenderID + ".",
	}
	raw, _ := json.Marshal(&out)
	body, _ := json.Marshal(events.Envelope{
		SpecVersion: events.SpecVersion, ID: out.ReminderID, Source: "bench-naive", Type: "reminder.naive",
		Time: time.Now().UTC(), DataContentType: events.ContentType, Data: raw,
	})
	m := nats.NewMsg(NaiveSubject)
	m.Data = body
	m.Header.Set(events.HeaderMsgID, out.ReminderID)
	m.Header.Set("Bench-Input", ev.ID)
	if _, err := n.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("naive publish: %w", err)
	}
	return nil
}

func (n *naiveWorker) errors() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]error(nil), n.errs...)
}
