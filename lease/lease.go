// Package lease elects one holder among replicas with a lease: a key in a
// JetStream key-value bucket whose TTL is the lease's.
//
// A replica acquires the lease by creating the key (Create fails if it
// exists) with a token of its own, and renews it with Update, compare-and-set
// on the revision it holds, every TTL/3. The lease is valid for two thirds
// of TTL after the renewal was sent, a third before the server can expire
// it: a holder that bounds its writes by that validity (ValidUntil, as a
// context deadline) has none pending once another replica can hold the
// lease. A holder that loses the lease, or cannot renew it before its
// validity ends, gives it up at once; the others retry Create every TTL/3,
// so a dead holder is replaced within about one TTL after its lease
// expires, and at once if it released the lease (deleted the key) when it
// stopped.
package lease

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// MinTTL is the shortest TTL accepted.
const MinTTL = 500 * time.Millisecond

// Options configure a Lease.
type Options struct {
	// KV is the bucket of the lease, provisioned by the caller with a TTL
	// equal to TTL.
	KV jetstream.KeyValue
	// Key is the lease's key in KV.
	Key string
	// Name names the holder, for logs; the lease's token is Name, a space
	// and a random text, unique to the Lease.
	Name string
	// TTL is how long the lease lasts unless renewed: it must equal the
	// bucket's TTL, and be at least MinTTL.
	TTL    time.Duration
	Logger zerolog.Logger
	// OnChange, if set, is called from Run's goroutine with true when the
	// lease is acquired and with false when it is lost or released (before
	// it is deleted, so that the holder stops its work first). The calls
	// alternate, starting with true. The lease is neither renewed nor
	// released while OnChange runs: it should return soon.
	OnChange func(held bool)
}

// Lease is one replica's side of a lease: Run competes for it and holds it,
// Held, ValidUntil and Revision tell whether and how long it is held.
// Its methods are safe for concurrent use.
type Lease struct {
	o       Options
	log     zerolog.Logger
	token   []byte
	period  time.Duration // of the renewals and of the attempts to acquire
	started atomic.Bool
	warned  string // the error of the current streak of warnings; Run's goroutine only

	mu         sync.Mutex
	rev        uint64        // 0: not held
	validUntil time.Time     // zero if not held
	changed    chan struct{} // closed, and replaced, at every change of rev or validUntil
}

// New validates o and returns a Lease, not held until Run acquires it.
func New(o Options) (*Lease, error) {
	switch {
	case o.KV == nil:
		return nil, errors.New("lease: no bucket: give the key-value bucket of the lease")
	case o.Key == "":
		return nil, errors.New("lease: no key: give the lease's key in its bucket")
	case o.TTL < MinTTL:
		return nil, fmt.Errorf("lease %s: TTL %s: write at least %s, the bucket's TTL", o.Key, o.TTL, MinTTL)
	}
	return &Lease{
		o:       o,
		log:     o.Logger.With().Str("bucket", o.KV.Bucket()).Str("lease", o.Key).Str("holder", o.Name).Logger(),
		token:   []byte(o.Name + " " + rand.Text()),
		period:  o.TTL / 3,
		changed: make(chan struct{}),
	}, nil
}

// Run competes for the lease, and renews it while it holds it, until ctx
// ends; it then releases the lease (deletes it, compare-and-set on the
// revision held) if it holds it, so that another replica can take it at
// once. Errors of NATS are logged and retried; Run returns nil once ctx
// ends. Call Run once.
func (l *Lease) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return fmt.Errorf("lease %s: Run called twice: call it once", l.o.Key)
	}
	defer l.release()
	tick := time.NewTicker(l.period)
	defer tick.Stop()
	for {
		l.tend(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Held reports whether the lease is held and still valid now: it was
// acquired or renewed less than two thirds of TTL ago.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked(time.Now())
}

func (l *Lease) heldLocked(now time.Time) bool {
	return l.rev != 0 && now.Before(l.validUntil)
}

// ValidUntil returns when the current hold of the lease stops being valid,
// two thirds of TTL after its last renewal (or acquisition) was sent; it is
// zero if the lease is not held, and in the past if a renewal is late.
// Callers bound their writes by it (a context deadline), so that none is
// pending once another replica can hold the lease.
func (l *Lease) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// Revision returns the KV revision of the lease as held now, a fencing
// token that grows with every acquisition and renewal; it is 0 if the lease
// is not held.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// Wait blocks until the lease is held (Held) or ctx ends: it returns nil
// once the lease is held, ctx.Err() if ctx ends first.
func (l *Lease) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		held, changed := l.heldLocked(time.Now()), l.changed
		l.mu.Unlock()
		if held {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// tend renews the lease if held and tries to acquire it otherwise.
func (l *Lease) tend(ctx context.Context) {
	l.mu.Lock()
	rev, validUntil := l.rev, l.validUntil
	l.mu.Unlock()
	// A request that takes longer than the validity is of no use: the
	// lease is no longer valid when it completes.
	actx, cancel := context.WithTimeout(ctx, l.o.TTL*2/3)
	defer cancel()
	// The validity counts from when the request was sent, not from its
	// reply: the server restarts the TTL when it stores the write, which is
	// after it was sent, so the validity ends at least a third of TTL
	// before the server can expire the lease.
	sent := time.Now()
	if rev == 0 {
		newRev, err := l.o.KV.Create(actx, l.o.Key, l.token)
		if errors.Is(err, jetstream.ErrKeyExists) {
			// A Create of ours may have been stored although its reply was
			// lost: the lease is ours if it holds our token. Adopt its
			// revision by renewing it, which also restarts its TTL, as
			// the time it was stored is not known.
			if e, gerr := l.o.KV.Get(actx, l.o.Key); gerr == nil && string(e.Value()) == string(l.token) {
				sent = time.Now()
				newRev, err = l.o.KV.Update(actx, l.o.Key, l.token, e.Revision())
			}
		}
		switch {
		case err == nil:
			l.set(newRev, sent)
			l.log.Info().Str("lease_ttl", l.o.TTL.String()).Msg("lease acquired")
			l.warned = ""
			l.notify(true)
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Another replica holds it.
			l.warned = ""
		case ctx.Err() == nil:
			l.warn(err, "cannot acquire the lease, retrying")
		}
		return
	}
	newRev, err := l.o.KV.Update(actx, l.o.Key, l.token, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Our last renewal may have been stored although its reply was
		// lost: the lease is still ours if it holds our token. Sent stays
		// the time of the first attempt: the validity can only be shorter.
		if e, gerr := l.o.KV.Get(actx, l.o.Key); gerr == nil && string(e.Value()) == string(l.token) {
			newRev, err = l.o.KV.Update(actx, l.o.Key, l.token, e.Revision())
		}
	}
	switch {
	case err == nil:
		l.set(newRev, sent)
		l.warned = ""
	case ctx.Err() != nil:
		// Stopping: Run releases the lease.
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound),
		errors.Is(err, nats.ErrConnectionClosed):
		l.set(0, time.Time{})
		l.log.Warn().Err(err).Msg("lease lost")
		l.notify(false)
	case !time.Now().Before(validUntil):
		// Its validity is over: another replica may hold it soon, if it
		// does not already.
		l.set(0, time.Time{})
		l.log.Warn().Err(err).Msg("lease not renewed in time: given up")
		l.notify(false)
	default:
		// Still valid: the next renewal may succeed in time.
		l.warn(err, "cannot renew the lease, retrying")
	}
}

// set records the lease as held at rev, valid for two thirds of TTL from
// sent, or as not held if rev is 0, and wakes up Wait.
func (l *Lease) set(rev uint64, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev = rev
	l.validUntil = sent.Add(l.o.TTL * 2 / 3)
	if rev == 0 {
		l.validUntil = time.Time{}
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// notify calls OnChange, if set.
func (l *Lease) notify(held bool) {
	if l.o.OnChange != nil {
		l.o.OnChange(held)
	}
}

// release deletes the lease if held, so that another replica takes it at
// once. It first gives it up (Held is false, OnChange(false) has returned),
// so that the holder's work has stopped before another can start.
func (l *Lease) release() {
	rev := l.Revision()
	if rev == 0 {
		return
	}
	l.set(0, time.Time{})
	l.notify(false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.o.KV.Delete(ctx, l.o.Key, jetstream.LastRevision(rev)); err != nil {
		l.log.Warn().Err(err).Msg("cannot release the lease: it expires by itself")
		return
	}
	l.log.Info().Msg("lease released")
}

// warn logs err as a warning, or at debug level if it repeats the error of
// the current streak, which a success ends.
func (l *Lease) warn(err error, msg string) {
	ev := l.log.Warn()
	if l.warned == err.Error() {
		ev = l.log.Debug()
	}
	l.warned = err.Error()
	ev.Err(err).Msg(msg)
}
