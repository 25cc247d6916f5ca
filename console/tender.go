package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/tender"
	"github.com/promemoria/promemoria/worker"
)

// maxTenderOutputs bounds the messages the Tender page lists.
const maxTenderOutputs = 1000

// tenderData is the Tender page.
type tenderData struct {
	ID      string
	Found   bool
	Tender  *tender.Tender
	Gaps    []worker.PendingGap
	Outputs []*output
	Window  window
	Scanned uint64
}

func (c *Console) tender(w http.ResponseWriter, r *http.Request) {
	l, _ := negotiate(r)
	id := r.URL.Query().Get("id")
	d := tenderData{ID: id}
	title := text(l, "tender.title")
	if id == "" {
		c.render(w, r, http.StatusOK, "tender", "tender", title, false, d)
		return
	}
	var before uint64
	if v := r.URL.Query().Get("before"); v != "" {
		var err error
		if before, err = strconv.ParseUint(v, 10, 64); err != nil {
			c.fail(w, r, http.StatusBadRequest, errors.New("before: want a message number"))
			return
		}
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	e, err := c.o.State.Get(ctx, "tender."+gap.Token(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		c.fail(w, r, errStatus(err), fmt.Errorf("tender %s: %w", id, err))
		return
	default:
		t := &tender.Tender{}
		if err := json.Unmarshal(e.Value(), t); err != nil {
			c.fail(w, r, http.StatusInternalServerError, fmt.Errorf("decode tender %s: %w", id, err))
			return
		}
		d.Tender, d.Found = t, true
		title += " " + id
	}
	d.Gaps, err = worker.Pending(ctx, c.o.State, worker.PendingFilter{TenderID: id, All: true}, c.o.Settle, c.o.Now())
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("gaps of tender %s: %w", id, err))
		return
	}
	match := mentions(id)
	outs, win, err := c.r.latest(ctx, c.o.Subjects, "", before, maxTenderOutputs, outputScan, match)
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("messages about tender %s: %w", id, err))
		return
	}
	for _, o := range outs {
		if o.about(id) {
			d.Outputs = append(d.Outputs, o)
		}
	}
	slices.Reverse(d.Outputs)
	d.Window = win
	if win.To >= win.From && win.To > 0 {
		d.Scanned = win.To - win.From + 1
	}
	d.Found = d.Found || len(d.Gaps) > 0 || len(d.Outputs) > 0
	status := http.StatusOK
	if !d.Found {
		status = http.StatusNotFound
	}
	c.render(w, r, status, "tender", "tender", title, false, d)
}
