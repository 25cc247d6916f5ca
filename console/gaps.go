package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// The page sizes of the Gaps page.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// gapStates are the values of the Gaps page's state filter, in the order
// the select lists them.
var gapStates = []string{"open", worker.PendingServiceDown, worker.PendingSettling, worker.PendingWaitingCIG,
	worker.PendingDue, worker.PendingReminded, worker.PendingResolved, worker.PendingExempt, "all"}

// gapsData is the Gaps page.
type gapsData struct {
	Filter   gapFilter
	Services []string
	States   []string
	Kinds    []events.Kind
	Page     gapPage
	After    uint64
	Size     int
}

// parseGapQuery reads the Gaps page's query.
func parseGapQuery(r *http.Request) (f gapFilter, after uint64, size int, err error) {
	q := r.URL.Query()
	f = gapFilter{Service: q.Get("service"), Kind: events.Kind(q.Get("kind")), TenderID: q.Get("tender"), State: q.Get("state")}
	if f.Kind != "" && f.Kind != events.KindCIG && f.Kind != events.KindContribution {
		return f, 0, 0, fmt.Errorf("kind %q: want cig or contribution", f.Kind)
	}
	if f.State == "" {
		f.State = "open"
	}
	if !slices.Contains(gapStates, f.State) {
		return f, 0, 0, fmt.Errorf("state %q: want one of %v", f.State, gapStates)
	}
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return f, 0, 0, errors.New("after: want a record number")
		}
	}
	size = defaultPageSize
	if v := q.Get("size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > maxPageSize {
			return f, 0, 0, fmt.Errorf("size: want 1 to %d", maxPageSize)
		}
	}
	return f, after, size, nil
}

func (c *Console) gaps(w http.ResponseWriter, r *http.Request) {
	l, _ := negotiate(r)
	f, after, size, err := parseGapQuery(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	svcs, err := c.r.services(ctx)
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("services: %w", err))
		return
	}
	page, err := c.r.gaps(ctx, f, after, size, svcs, c.o.Settle, c.o.Now())
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("gaps: %w", err))
		return
	}
	d := gapsData{Filter: f, States: gapStates, Kinds: []events.Kind{events.KindCIG, events.KindContribution}, Page: page, After: after, Size: size}
	d.Services = slices.Clone(c.o.Services)
	for n := range svcs {
		if !slices.Contains(d.Services, n) {
			d.Services = append(d.Services, n)
		}
	}
	slices.Sort(d.Services)
	c.render(w, r, http.StatusOK, "gaps", "gaps", text(l, "gaps.title"), false, d)
}
