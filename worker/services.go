package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/promemoria/promemoria/outage"
)

// services is the leader's view of the ANAC services' states. The leader
// is their only writer: it loads them all when it takes the lease and
// keeps its own changes, so deciding a gap's reminders costs no round
// trip.
type services struct {
	mu   sync.RWMutex
	svcs map[string]*outage.Service
}

func newServices() *services { return &services{svcs: map[string]*outage.Service{}} }

// get returns the state of a service: up and never reported down if
// unknown.
func (c *services) get(name string) *outage.Service {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if s, ok := c.svcs[name]; ok {
		return s
	}
	return &outage.Service{Name: name}
}

func (c *services) put(s *outage.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.svcs[s.Name] = s
}

// loadServices reads every service's state from the bucket.
func (w *Worker) loadServices(ctx context.Context) error {
	cur, err := w.openCursor(ctx, "svc.>")
	if err != nil {
		return err
	}
	defer cur.close(ctx)
	fresh := map[string]*outage.Service{}
	for {
		recs, err := cur.next(256)
		if err != nil {
			return fmt.Errorf("load services: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			s := &outage.Service{}
			if err := json.Unmarshal(r.raw, s); err != nil {
				w.log.Error().Err(err).Str("key", r.key).Msg("service state undecodable")
				continue
			}
			fresh[s.Name] = s
		}
	}
	w.svcs.mu.Lock()
	w.svcs.svcs = fresh
	w.svcs.mu.Unlock()
	return nil
}

// freshService reads a service's state from the bucket and makes it the
// leader's view.
func (w *Worker) freshService(ctx context.Context, name string) (*outage.Service, error) {
	recs, err := w.store.load(ctx, []string{serviceKey(name)}, true)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", name, err)
	}
	s := &outage.Service{Name: name}
	if r := recs[serviceKey(name)]; r.exists() {
		if err := json.Unmarshal(r.raw, s); err != nil {
			return nil, fmt.Errorf("decode %s (revision %d): %w", r.key, r.rev, err)
		}
	}
	w.svcs.put(s)
	return s, nil
}
