package probe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/probe"
	"github.com/promemoria/promemoria/worker"
)

// deadline bounds every wait: generous, for a busy machine under -race.
const deadline = 10 * time.Second

// eventually waits until cond holds, failing the test with what after
// deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.WaitFor(t, deadline, what, cond)
}

// mode is how a target answers.
type mode int

const (
	answerOK          mode = iota // 200 with the expected body
	answer503                     // 503
	answerSlow                    // nothing until the client gives up
	answerMaintenance             // 200 with a maintenance page
)

const okBody = "<html><body>Servizio attivo</body></html>"

// hit is one request a target received.
type hit struct {
	at time.Time
	ok bool // the answer was meant to pass
}

// target is a real HTTP server whose answers the test switches at run time.
type target struct {
	*httptest.Server
	mu       sync.Mutex
	mode     mode
	failNext int  // answer the next failNext requests with failMode
	failMode mode // the mode of failNext
	hits     []hit
}

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) serve(w http.ResponseWriter, req *http.Request) {
	tg.mu.Lock()
	m := tg.mode
	if tg.failNext > 0 {
		tg.failNext--
		m = tg.failMode
	}
	tg.hits = append(tg.hits, hit{at: time.Now(), ok: m == answerOK})
	tg.mu.Unlock()
	switch m {
	case answerOK:
		_, _ = w.Write([]byte(okBody))
	case answer503:
		http.Error(w, "Servizio temporaneamente non disponibile", http.StatusServiceUnavailable)
	case answerSlow:
		select {
		case <-req.Context().Done():
		case <-time.After(deadline):
		}
	case answerMaintenance:
		_, _ = w.Write([]byte("<html><body>Manutenzione programmata</body></html>"))
	}
}

// set makes every later request answer with m.
func (tg *target) set(m mode) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.mode, tg.failNext = m, 0
}

// flap answers the next n requests with m, then as before.
func (tg *target) flap(m mode, n int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.failMode, tg.failNext = m, n
}

func (tg *target) count() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.hits)
}

func (tg *target) snapshot() []hit {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]hit(nil), tg.hits...)
}

// waitHits waits until the target has received n more requests than it
// had received when from was taken.
func (tg *target) waitHits(t *testing.T, from, n int) {
	t.Helper()
	eventually(t, "the target is not checked any more", func() bool { return tg.count() >= from+n })
}

// firstRun returns the arrival times of the request before the first one
// after index from whose answer was meant to be ok (or not), and of that
// one: a check that starts the run started between the two.
func (tg *target) firstRun(t *testing.T, from int, ok bool) (before, first time.Time) {
	t.Helper()
	hits := tg.snapshot()
	for i := from; i < len(hits); i++ {
		if hits[i].ok == ok {
			if i > 0 {
				before = hits[i-1].at
			}
			return before, hits[i].at
		}
	}
	t.Fatalf("no request answered ok=%v after request %d", ok, from)
	return
}

// bus is a real embedded nats-server with the input stream.
type bus struct {
	srv *natsserver.Server
	js  jetstream.JetStream
}

var subjects = events.Subjects{Prefix: events.DefaultPrefix}

func newBus(t *testing.T) *bus {
	t.Helper()
	b := &bus{srv: natstest.Start(t)}
	_, b.js = natstest.Connect(t, b.srv)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	_, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       worker.StreamEvents,
		Subjects:   []string{subjects.Prefix + ".portal.>"},
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bus) connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(b.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// published is an event the probe published, decoded as the worker would.
type published struct {
	*events.Event
	change *events.PortalChange
	msgID  string
}

// events returns every event on the input stream, decoded with
// events.Decode: an event that breaks the contract fails the test.
func (b *bus) events(t *testing.T) []published {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	st, err := b.js.Stream(ctx, worker.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []published
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(m.Data, subjects.TypeOf(m.Subject), events.DefaultLimits())
		if err != nil {
			t.Fatalf("event %d on %s breaks the contract: %v\n%s", seq, m.Subject, err, m.Data)
		}
		out = append(out, published{Event: ev, change: ev.Payload.(*events.PortalChange), msgID: m.Header.Get(events.HeaderMsgID)})
	}
	return out
}

// waitEvents waits until the stream holds n events, and returns them.
func (b *bus) waitEvents(t *testing.T, n int) []published {
	t.Helper()
	var evs []published
	eventually(t, "waiting for events", func() bool {
		evs = b.events(t)
		return len(evs) >= n
	})
	if len(evs) > n {
		t.Fatalf("want %d events, got %d: %+v", n, len(evs), evs)
	}
	return evs
}

// logger writes to the test log: warnings, or everything with
// PROMEMORIA_TEST_LOG set.
func logger(t *testing.T) zerolog.Logger {
	level := zerolog.WarnLevel
	if os.Getenv("PROMEMORIA_TEST_LOG") != "" {
		level = zerolog.DebugLevel
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(level).With().Timestamp().Logger()
}

// running is a Runner running on a connection of its own, as a replica.
type running struct {
	*probe.Runner
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start creates a runner on its own connection and runs it until the test
// ends (or stop). Its specs may probe faster than probe.MinInterval.
func (b *bus) start(t *testing.T, o probe.Options) *running {
	t.Helper()
	nc := b.connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = logger(t)
	o = probe.Fast(o) // probe every 50ms
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r, err := probe.NewRunner(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	rr := &running{Runner: r, nc: nc, cancel: rcancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(rctx) }()
	t.Cleanup(func() { rr.stop(t) })
	return rr
}

// stop stops the runner and waits until Run returns.
func (rr *running) stop(t *testing.T) {
	t.Helper()
	rr.once.Do(func() {
		rr.cancel()
		select {
		case err := <-rr.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			t.Errorf("Run did not return within %s of its context ending", deadline)
		}
	})
}
