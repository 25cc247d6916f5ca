package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	s := &outage.Service{Name: name}
	rev, err := getJSON(ctx, w.res.state, serviceKey(name), s)
	return s, rev, err
}

// updateTender applies fn to the stored tender under compare-and-set,
// retrying on conflicts, and returns the tender as written and its revision.
func (w *Worker) updateTender(ctx context.Context, id string, fn func(*tender.Tender)) (*tender.Tender, uint64, error) {
	key := tenderKey(id)
	for range maxCASRetries {
		t := &tender.Tender{TenderID: id}
		rev, err := getJSON(ctx, w.res.state, key, t)
		if err != nil {
			return nil, 0, err
		}
		before, _ := json.Marshal(t)
		fn(t)
		after, _ := json.Marshal(t)
		if rev != 0 && string(before) == string(after) {
			return t, rev, nil
		}
		nrev, err := putJSON(ctx, w.res.state, key, t, rev)
		if errors.Is(err, errConflict) {
			w.metrics.conflict()
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return t, nrev, nil
	}
	return nil, 0, fmt.Errorf("tender %s: %w after %d attempts", id, errConflict, maxCASRetries)
}
