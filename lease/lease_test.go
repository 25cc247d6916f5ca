package lease

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/natsserver/natstest"
)

const (
	// ttl is the tests' lease: long enough that a busy machine renews it in
	// time (every second, with two of validity).
	ttl = 3 * time.Second
	// deadline bounds every wait: generous, for a busy machine.
	deadline = 30 * time.Second
	bucket   = "lease_test"
	key      = "leader"
)

// logger writes to the test log: warnings, or everything with
// PROMEMORIA_TEST_LOG set.
func logger(t *testing.T) zerolog.Logger {
	level := zerolog.WarnLevel
	if os.Getenv("PROMEMORIA_TEST_LOG") != "" {
		level = zerolog.DebugLevel
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(level).With().Timestamp().Logger()
}

// newBucket starts a server and creates the lease bucket, of TTL ttl, on it.
func newBucket(t *testing.T, ttl time.Duration) (*natsserver.Server, jetstream.KeyValue) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, TTL: ttl, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return srv, kv
}

// holder is a Lease run on a connection of its own, as a replica.
type holder struct {
	*Lease
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once

	mu      sync.Mutex
	changes []bool // OnChange's calls
}

// start creates a Lease named name on a connection of its own to srv and
// runs it until the test ends (or stop).
func start(t *testing.T, srv *natsserver.Server, name string, ttl time.Duration) *holder {
	t.Helper()
	nc, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	h := &holder{nc: nc, done: make(chan error, 1)}
	h.Lease, err = New(Options{KV: kv, Key: key, Name: name, TTL: ttl, Logger: logger(t), OnChange: func(held bool) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes = append(h.changes, held)
	}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	h.cancel = rcancel
	go func() { h.done <- h.Run(rctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop cancels Run's context and waits until Run returns.
func (h *holder) stop(t *testing.T) {
	t.Helper()
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			t.Errorf("Run did not return within %s of its context ending", deadline)
		}
	})
}

// changed returns OnChange's calls so far.
func (h *holder) changed() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.changes)
}

// checkChanges checks that OnChange was called with true and false in
// turn, starting with true, ending with last.
func checkChanges(t *testing.T, name string, got []bool, last bool) {
	t.Helper()
	for i, held := range got {
		if held != (i%2 == 0) {
			t.Fatalf("%s: OnChange called with %v: want true and false in turn, from true", name, got)
		}
	}
	if len(got) == 0 || got[len(got)-1] != last {
		t.Fatalf("%s: OnChange called with %v: want the last call with %v", name, got, last)
	}
}

// holders returns those of hs that hold the lease now.
func holders(hs []*holder) []*holder {
	var held []*holder
	for _, h := range hs {
		if h.Held() {
			held = append(held, h)
		}
	}
	return held
}

func TestOneHolderAtATime(t *testing.T) {
	t.Parallel()
	srv, kv := newBucket(t, ttl)
	hs := []*holder{start(t, srv, "a", ttl), start(t, srv, "b", ttl), start(t, srv, "c", ttl)}
	natstest.WaitFor(t, deadline, "a holder", func() bool { return len(holders(hs)) > 0 })

	// Over two lease times, the holder renews its lease and no one else
	// holds it.
	first := holders(hs)[0]
	for end := time.Now().Add(2 * ttl); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if held := holders(hs); len(held) > 1 {
			t.Fatalf("%d replicas hold the lease at once", len(held))
		}
	}
	for _, h := range hs {
		if h != first && len(h.changed()) != 0 {
			t.Fatalf("a standby's OnChange was called with %v while %s held the lease", h.changed(), first.o.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != string(first.token) {
		t.Fatalf("the key holds %q, want the holder's token %q", e.Value(), first.token)
	}
	// A validity, not one still to come: on a busy machine a renewal can
	// be late by more than the margin, and the holder then gives up.
	if rev := first.Revision(); (rev == 0 || first.ValidUntil().IsZero()) && first.Held() {
		t.Fatalf("the holder's revision %d, valid until %s: want a revision and a validity", rev, first.ValidUntil())
	}
	for _, h := range hs {
		if h != first && (h.Revision() != 0 || !h.ValidUntil().IsZero()) {
			t.Fatalf("a standby has revision %d, valid until %s: want 0 and zero", h.Revision(), h.ValidUntil())
		}
	}

	// The holder stops: it releases the lease (deletes it), and another
	// takes it over without waiting for it to expire.
	first.stop(t)
	if first.Held() || first.Revision() != 0 || !first.ValidUntil().IsZero() {
		t.Fatal("a stopped holder still holds the lease")
	}
	checkChanges(t, first.o.Name, first.changed(), false)
	if e, err := kv.Get(ctx, key); err == nil && string(e.Value()) == string(first.token) {
		t.Fatal("the stopped holder did not release the lease: it still holds its token")
	} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	stopped := time.Now()
	rest := slices.DeleteFunc(slices.Clone(hs), func(h *holder) bool { return h == first })
	// OnChange(true) follows the state it reports: wait for both.
	natstest.WaitFor(t, deadline, "another holder", func() bool {
		h := holders(rest)
		return len(h) == 1 && len(h[0].changed()) > 0
	})
	t.Logf("taken over %s after the holder stopped (TTL %s)", time.Since(stopped).Round(time.Millisecond), ttl)
	second := holders(rest)[0]
	checkChanges(t, second.o.Name, second.changed(), true)
	if second.Revision() <= e.Revision() {
		t.Errorf("the new holder's revision %d is not past the old one's %d", second.Revision(), e.Revision())
	}
}

// TestExpiry: a holder whose renewals stop (its connection is closed, so it
// cannot release the lease either) is replaced once the lease expires.
func TestExpiry(t *testing.T) {
	t.Parallel()
	const short = time.Second
	srv, kv := newBucket(t, short)
	a := start(t, srv, "a", short)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	a.nc.Close()
	b := start(t, srv, "b", short)
	// OnChange(false) follows the state it reports: wait for both.
	natstest.WaitFor(t, deadline, "the first holder to give the lease up", func() bool {
		c := a.changed()
		return !a.Held() && a.Revision() == 0 && len(c) > 0 && !c[len(c)-1]
	})
	checkChanges(t, "a", a.changed(), false)
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, deadline, "the new holder told", func() bool { return len(b.changed()) > 0 })
	checkChanges(t, "b", b.changed(), true)
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != string(b.token) {
		t.Fatalf("the key holds %q, want the new holder's token %q", e.Value(), b.token)
	}
}

// TestLost: a holder that finds the key changed by someone else gives the
// lease up at once.
func TestLost(t *testing.T) {
	t.Parallel()
	srv, kv := newBucket(t, ttl)
	a := start(t, srv, "a", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, key, []byte("z other")); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, deadline, "the holder to give the lease up", func() bool { return len(a.changed()) >= 2 })
	if a.Held() || a.Revision() != 0 || !a.ValidUntil().IsZero() {
		t.Fatalf("a lost lease is held: revision %d, valid until %s", a.Revision(), a.ValidUntil())
	}
	if got := a.changed(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("OnChange called with %v, want [true false]", got)
	}
	// Nor is it released: the key is someone else's.
	a.stop(t)
	e, err := kv.Get(ctx, key)
	if err != nil || string(e.Value()) != "z other" {
		t.Fatalf("after the loser stopped the key holds %v (%v), want the other's token", e, err)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	srv, _ := newBucket(t, ttl)
	a := start(t, srv, "a", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.Held() {
		t.Fatal("Wait returned, the lease not held")
	}

	// Another waits as long as a holds the lease: until its context ends.
	b := start(t, srv, "b", ttl)
	bctx, bcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer bcancel()
	if err := b.Wait(bctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while another holds the lease: %v, want the context's deadline", err)
	}
	// Then until a stops.
	waited := make(chan error, 1)
	go func() { waited <- b.Wait(ctx) }()
	a.stop(t)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if !b.Held() {
		t.Fatal("Wait returned, the lease not held")
	}
}

// TestCreateAckLost: a Create of the lease stored although its reply was
// lost leaves the key with our token; the next attempt adopts it.
func TestCreateAckLost(t *testing.T) {
	t.Parallel()
	_, kv := newBucket(t, ttl)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	l, err := New(Options{KV: kv, Key: key, Name: "a", TTL: ttl, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}

	// Someone else's lease is not adopted.
	if _, err := kv.Create(ctx, key, []byte("b other")); err != nil {
		t.Fatal(err)
	}
	l.tend(ctx)
	if l.Held() {
		t.Fatal("the lease of another was adopted")
	}
	if err := kv.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}

	// Ours is.
	rev, err := kv.Create(ctx, key, l.token)
	if err != nil {
		t.Fatal(err)
	}
	l.tend(ctx)
	if !l.Held() || l.Revision() <= rev {
		t.Fatalf("held %v at revision %d: want the lease stored with our token (revision %d) adopted and renewed", l.Held(), l.Revision(), rev)
	}
	l.tend(ctx) // and renewed from there
	if !l.Held() {
		t.Fatal("the adopted lease was not renewed")
	}
	l.release()
	if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after release: %v, want the key deleted", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, kv := newBucket(t, ttl)
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{name: "no bucket", o: Options{Key: key, TTL: ttl}, wantErr: "no bucket"},
		{name: "no key", o: Options{KV: kv, TTL: ttl}, wantErr: "no key"},
		{name: "TTL too short", o: Options{KV: kv, Key: key, TTL: 100 * time.Millisecond}, wantErr: "TTL 100ms: write at least 500ms"},
	}
	for _, tt := range tests {
		if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.wantErr)
		}
	}
	l, err := New(Options{KV: kv, Key: key, Name: "a", TTL: MinTTL})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(l.token), "a ") || len(l.token) < len("a ")+16 {
		t.Errorf("token %q: want the name, a space and a random text", l.token)
	}
	if l.Held() || l.Revision() != 0 || !l.ValidUntil().IsZero() {
		t.Error("a new Lease is held")
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	srv, _ := newBucket(t, ttl)
	a := start(t, srv, "a", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err == nil {
		t.Fatal("a second Run: no error")
	}
	if !a.Held() {
		t.Fatal("a second Run disturbed the first")
	}
}
