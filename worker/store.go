package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// maxCASRetries bounds the compare-and-set retries of one unit of work:
// beyond it the messages are retried later.
const maxCASRetries = 50

// errConflict reports a compare-and-set that lost to a concurrent writer.
var errConflict = errors.New("state changed concurrently")

// Keys of the state bucket. They are built here and only here; nothing
// parses them back (gap keys are gap.Key's).
func serviceKey(name string) string { return "svc." + gap.Token(name) }
func tenderKey(id string) string    { return "tender." + gap.Token(id) }

// record is one key of a bucket as read: its value and revision. rev 0
// means the key was never written; a deleted key has its delete marker's
// revision and no value.
type record struct {
	key string
	raw []byte
	rev uint64
}

// exists reports whether the record holds a value.
func (r record) exists() bool { return r.rev != 0 && r.raw != nil }

// store reads and writes a key-value bucket the way a batch needs it:
// many keys in one request, many compare-and-set writes in one flush. It
// keeps the records it read and wrote in a bounded cache: with one writer
// at a time (the lease) the cache is right unless another replica wrote
// meanwhile, and then the compare-and-set fails and the key is read again.
type store struct {
	js     jetstream.JetStream
	stream string // the bucket's stream
	prefix string // the subject prefix of its keys
	cache  *cache
}

func newStore(js jetstream.JetStream, bucket string, cacheSize int) *store {
	return &store{js: js, stream: "KV_" + bucket, prefix: "$KV." + bucket + ".", cache: newCache(cacheSize)}
}

// loadChunk is how many keys one batched read asks for.
const loadChunk = 256

// loadTimeout bounds one batched read.
const loadTimeout = 10 * time.Second

// load returns the records of keys: from the cache, and the rest with
// batched direct gets (one request per loadChunk keys, a few at once).
// fresh skips the cache.
func (s *store) load(ctx context.Context, keys []string, fresh bool) (map[string]record, error) {
	out := make(map[string]record, len(keys))
	var miss []string
	for _, k := range keys {
		if _, ok := out[k]; ok {
			continue
		}
		if !fresh {
			if r, ok := s.cache.get(k); ok {
				out[k] = r
				continue
			}
		}
		out[k] = record{key: k}
		miss = append(miss, k)
	}
	if len(miss) == 0 {
		return out, nil
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, 4)
	)
	for i := 0; i < len(miss); i += loadChunk {
		chunk := miss[i:min(i+loadChunk, len(miss))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			got, err := s.getLast(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			for _, r := range got {
				out[r.key] = r
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for _, k := range miss {
		s.cache.put(out[k])
	}
	return out, nil
}

// getLast reads the latest message of each key with one direct batch get.
func (s *store) getLast(ctx context.Context, keys []string) ([]record, error) {
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = s.prefix + k
	}
	// The reply is a stream of messages ended by a marker; a reply cut
	// short (a timeout ends the iteration without an error) must not make
	// the missing keys look absent: it is an error, and the batch is
	// retried.
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	it, err := jetstreamext.GetLastMsgsFor(ctx, s.js, s.stream, subjects, jetstreamext.GetLastMsgsBatchSize(len(subjects)))
	if err != nil {
		return nil, fmt.Errorf("read %d keys: %w", len(keys), err)
	}
	var out []record
	complete := false
	for m, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			complete = true // none of the keys exists
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %d keys: %w", len(keys), err)
		}
		out = append(out, recordOf(strings.TrimPrefix(m.Subject, s.prefix), m.Header, m.Data, m.Sequence))
		complete = m.Header.Get("Nats-Num-Pending") == "0"
	}
	if !complete {
		return nil, fmt.Errorf("read %d keys: the reply ended after %d messages without its last: %w", len(keys), len(out), context.DeadlineExceeded)
	}
	return out, nil
}

// recordOf makes a record of a bucket's stream message.
func recordOf(key string, h nats.Header, data []byte, seq uint64) record {
	if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return record{key: key, rev: seq}
	}
	if data == nil {
		data = []byte{}
	}
	return record{key: key, raw: data, rev: seq}
}

// write is a change of one record, committed under compare-and-set on the
// revision it was read at, and the messages to publish once it is.
type write struct {
	key string
	rev uint64 // expected revision: 0 if absent
	val []byte
	// then is published once the write is committed: the record says
	// these messages were sent.
	then []outMsg
	// committed logs and counts the change once it is stored.
	committed func()

	err error
}

// commit writes every change in one pipelined flush, each under
// compare-and-set, and waits for all the acknowledgements. A write that
// lost to another writer gets errConflict, and its key leaves the cache;
// other failures are returned. Writes succeed or fail one by one.
func (s *store) commit(ctx context.Context, ws []*write) error {
	futures := make([]jetstream.PubAckFuture, len(ws))
	for i, w := range ws {
		msg := nats.NewMsg(s.prefix + w.key)
		msg.Data = w.val
		f, err := s.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(w.rev))
		if err != nil {
			return fmt.Errorf("write %s: %w", w.key, err)
		}
		futures[i] = f
	}
	var firstErr error
	for i, f := range futures {
		w := ws[i]
		select {
		case ack := <-f.Ok():
			s.cache.put(record{key: w.key, raw: w.val, rev: ack.Sequence})
		case err := <-f.Err():
			s.cache.del(w.key)
			if isConflict(err) {
				w.err = errConflict
				continue
			}
			w.err = err
			if firstErr == nil {
				firstErr = fmt.Errorf("write %s: %w", w.key, err)
			}
		case <-ctx.Done():
			s.cache.del(w.key)
			w.err = ctx.Err()
			if firstErr == nil {
				firstErr = ctx.Err()
			}
		}
	}
	return firstErr
}

func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// cache keeps records by key, up to a number of entries.
type cache struct {
	mu  sync.Mutex
	m   map[string]record
	max int
}

func newCache(max int) *cache { return &cache{m: make(map[string]record), max: max} }

func (c *cache) get(key string) (record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[key]
	return r, ok
}

// put keeps r unless the cache holds a newer revision of its key.
func (c *cache) put(r record) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[r.key]; ok && cur.rev > r.rev {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // evict an arbitrary tenth
			delete(c.m, k)
			if len(c.m) < c.max*9/10 {
				break
			}
		}
	}
	c.m[r.key] = r
}

func (c *cache) del(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

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

// ServiceState returns the state of a service stored in the state bucket
// kv, and its revision: 0 (and an empty history, up) if the service was
// never reported.
func ServiceState(ctx context.Context, kv jetstream.KeyValue, name string) (*outage.Service, uint64, error) {
	s := &outage.Service{Name: name}
	rev, err := getJSON(ctx, kv, serviceKey(name), s)
	return s, rev, err
}
