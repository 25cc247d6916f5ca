package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// maxCASRetries bounds the compare-and-set retries of one update: beyond
// it the message is retried later.
const maxCASRetries = 50

// errConflict reports a compare-and-set that lost to a concurrent writer.
var errConflict = errors.New("state changed concurrently")

// Keys of the state bucket.
func serviceKey(name string) string { return "svc." + gap.Token(name) }
func tenderKey(id string) string    { return "tender." + gap.Token(id) }

// getJSON loads key into v and returns its revision; 0 means absent.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s (revision %d): %w", key, e.Revision(), err)
	}
	return e.Revision(), nil
}

// putJSON writes v at key if its revision is still rev (0: if absent). It
// returns errConflict if another writer got there first.
func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = kv.Create(ctx, key, b)
	} else {
		nrev, err = kv.Update(ctx, key, b, rev)
	}
	if err == nil {
		return nrev, nil
	}
	if isConflict(err) {
		return 0, errConflict
	}
	return 0, fmt.Errorf("write %s: %w", key, err)
}

func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// loadService returns the stored state of a service (empty if never seen).
func (w *Worker) loadService(ctx context.Context, name string) (*outage.Service, uint64, error) {
	return ServiceState(ctx, w.res.state, name)
}

// ServiceState returns the state of a service stored in the state bucket
// kv, and its revision: 0 (and an empty history, up) if the service was
// never reported.
func ServiceState(ctx context.Context, kv jetstream.KeyValue, name string) (*outage.Service, uint64, error) {
	s := &outage.Service{Name: name}
	rev, err := getJSON(ctx, kv, serviceKey(name), s)
	return s, rev, err
}

// updateTender applies fn to the stored tender under compare-and-set,
// retrying on conflicts, and returns the tender as written, its revision,
// and whether this call created it. The last version this worker wrote is
// cached, so the usual update costs one round trip; a stale cache (another
// replica wrote since) only costs a conflict and a fresh read.
func (w *Worker) updateTender(ctx context.Context, id string, fn func(*tender.Tender)) (*tender.Tender, uint64, bool, error) {
	key := tenderKey(id)
	for attempt := range maxCASRetries {
		var raw []byte
		var rev uint64
		if c, ok := w.docs.get(key); ok && attempt == 0 {
			raw, rev = c.raw, c.rev
		} else if attempt > 0 || !w.docs.assumeNew {
			e, err := w.res.state.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				return nil, 0, false, fmt.Errorf("get %s: %w", key, err)
			default:
				raw, rev = e.Value(), e.Revision()
			}
		}
		t := &tender.Tender{TenderID: id}
		if raw != nil {
			if err := json.Unmarshal(raw, t); err != nil {
				return nil, 0, false, fmt.Errorf("decode %s (revision %d): %w", key, rev, err)
			}
		}
		fn(t)
		after, err := json.Marshal(t)
		if err != nil {
			return nil, 0, false, err
		}
		if rev != 0 && bytes.Equal(raw, after) {
			return t, rev, false, nil
		}
		var nrev uint64
		if rev == 0 {
			nrev, err = w.res.state.Create(ctx, key, after)
		} else {
			nrev, err = w.res.state.Update(ctx, key, after, rev)
		}
		if err != nil && isConflict(err) {
			w.docs.del(key)
			if attempt > 0 || raw != nil {
				w.metrics.conflict()
			}
			continue
		}
		if err != nil {
			return nil, 0, false, fmt.Errorf("write %s: %w", key, err)
		}
		w.docs.put(key, after, nrev)
		return t, nrev, rev == 0, nil
	}
	return nil, 0, false, fmt.Errorf("tender %s: %w after %d attempts", id, errConflict, maxCASRetries)
}

// docCache keeps the last version of documents this worker wrote.
type docCache struct {
	mu  sync.Mutex
	m   map[string]cachedDoc
	max int
	// assumeNew makes a key missing from the cache be tried as new (a
	// create, no read first): right for streams of mostly new tenders.
	assumeNew bool
}

type cachedDoc struct {
	raw []byte
	rev uint64
}

func newDocCache(max int) *docCache {
	return &docCache{m: make(map[string]cachedDoc), max: max, assumeNew: true}
}

func (c *docCache) get(key string) (cachedDoc, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[key]
	return d, ok
}

func (c *docCache) put(key string, raw []byte, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // evict an arbitrary tenth
			delete(c.m, k)
			if len(c.m) < c.max*9/10 {
				break
			}
		}
	}
	c.m[key] = cachedDoc{raw: raw, rev: rev}
}

func (c *docCache) del(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
