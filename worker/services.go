package worker

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/outage"
)

// serviceCache mirrors the services' state from the bucket through a KV
// watcher, so deciding a gap's reminders costs no round trip. A worker
// writes its own changes through at once; other replicas' changes arrive
// within milliseconds, and the restoration passes (run at the end of settle
// and again SweepGrace later, each reading the state fresh) cover that lag.
type serviceCache struct {
	mu   sync.RWMutex
	svcs map[string]cachedService
}

type cachedService struct {
	svc *outage.Service
	rev uint64
}

func newServiceCache() *serviceCache {
	return &serviceCache{svcs: map[string]cachedService{}}
}

func (c *serviceCache) get(name string) (*outage.Service, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cs, ok := c.svcs[name]
	return cs.svc, ok
}

// put stores s if rev is newer than what the cache holds.
func (c *serviceCache) put(s *outage.Service, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.svcs[s.Name]; ok && cur.rev >= rev {
		return
	}
	c.svcs[s.Name] = cachedService{svc: s, rev: rev}
}

// watch keeps the cache up to date until ctx ends.
func (c *serviceCache) watch(ctx context.Context, kv jetstream.KeyValue, onErr func(error)) error {
	wt, err := kv.Watch(ctx, "svc.>", jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = wt.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-wt.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue // end of the initial values
				}
				s := &outage.Service{}
				if err := json.Unmarshal(e.Value(), s); err != nil {
					onErr(err)
					continue
				}
				c.put(s, e.Revision())
			}
		}
	}()
	return nil
}

// service returns the state of a service, from the cache when it has it.
func (w *Worker) service(ctx context.Context, name string) (*outage.Service, error) {
	if s, ok := w.svcs.get(name); ok {
		return s, nil
	}
	s, rev, err := w.loadService(ctx, name)
	if err != nil {
		return nil, err
	}
	w.svcs.put(s, rev) // rev 0: never reported; the watcher replaces it
	return s, nil
}
