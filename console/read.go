package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/worker"
)

// This file reads what the pages show, straight from JetStream and never
// more than a page needs: the state bucket's stream (KV_promemoria_state)
// and the output stream, with direct batch gets (one request returns up to
// a chunk of messages matching a subject filter from a sequence on). With
// one revision per key (the bucket's history is 1), the bucket's stream
// holds exactly the latest value of every key, so reading it forward from a
// sequence is a listing of the keys in the order they were last written,
// and a page's last sequence is the cursor of the next page.

const (
	// chunk is how many messages one direct batch get asks for.
	chunk = 256
	// scanCap bounds the records one page of gaps reads when a filter
	// the keys cannot express (the state) skips most of them: the page is
	// then partial and the next one goes on from there.
	scanCap = 20_000
	// outputScan is how many of the latest output messages the tender page
	// searches; "search older" goes on from where it stopped.
	outputScan = 20_000
	// countChunk is how many records one request of the open gaps' count
	// asks for: it reads them all, so in large chunks.
	countChunk = 4096
)

// stateStream and stateSubject name the state bucket's stream and the
// subject of one of its keys.
const stateStream = "KV_" + worker.BucketState

func stateSubject(key string) string { return "$KV." + worker.BucketState + "." + key }

// reader reads the state bucket and the output stream.
type reader struct {
	js    jetstream.JetStream
	state jetstream.KeyValue
	// read counts the messages read from the state bucket's stream by
	// listings: tests check that a page reads what it shows, not the
	// bucket.
	read atomic.Int64
	// counts caches the open gaps per service.
	counts gapCounts
}

// eachMsg calls fn for the messages of stream matching subject from
// sequence from on, in order, chunk by chunk, until fn returns false, the
// stream ends or limit messages were read (0: no limit). It returns the
// number of matching messages after the last one read (0 at the end).
func (r *reader) eachMsg(ctx context.Context, stream, subject string, from uint64, limit int, fn func(m *jetstream.RawStreamMsg) bool) (pending uint64, err error) {
	return r.eachMsgChunked(ctx, stream, subject, from, limit, chunk, fn)
}

// eachMsgChunked is eachMsg asking for size messages at a time.
func (r *reader) eachMsgChunked(ctx context.Context, stream, subject string, from uint64, limit, size int, fn func(m *jetstream.RawStreamMsg) bool) (pending uint64, err error) {
	read := 0
	for {
		n := size
		if limit > 0 {
			n = min(n, limit-read)
			if n <= 0 {
				return pending, nil
			}
		}
		opts := []jetstreamext.GetBatchOpt{jetstreamext.GetBatchSeq(max(from, 1))}
		if subject != "" {
			opts = append(opts, jetstreamext.GetBatchSubject(subject))
		}
		it, err := jetstreamext.GetBatch(ctx, r.js, stream, n, opts...)
		if err != nil {
			return 0, fmt.Errorf("read %s from %d: %w", stream, from, err)
		}
		got, stop := 0, false
		for m, err := range it {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return 0, nil
			}
			if err != nil {
				return 0, fmt.Errorf("read %s from %d: %w", stream, from, err)
			}
			got++
			read++
			from = m.Sequence + 1
			pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if stream == stateStream {
				r.read.Add(1)
			}
			if !fn(m) {
				stop = true
				break
			}
		}
		if stop || got == 0 || pending == 0 {
			return pending, nil
		}
	}
}

// deleted reports whether a bucket message is a delete or purge marker.
func deleted(m *jetstream.RawStreamMsg) bool {
	op := m.Header.Get("KV-Operation")
	return op == "DEL" || op == "PURGE"
}

// services reads every service's state (a few keys).
func (r *reader) services(ctx context.Context) (map[string]*outage.Service, error) {
	out := map[string]*outage.Service{}
	var decodeErr error
	_, err := r.eachMsg(ctx, stateStream, stateSubject("svc.>"), 1, 0, func(m *jetstream.RawStreamMsg) bool {
		if deleted(m) {
			return true
		}
		s := &outage.Service{}
		if err := json.Unmarshal(m.Data, s); err != nil {
			decodeErr = fmt.Errorf("decode %s: %w", m.Subject, err)
			return false
		}
		out[s.Name] = s
		return true
	})
	if err == nil {
		err = decodeErr
	}
	return out, err
}

// gapFilter selects gaps: Service, Kind and TenderID narrow the key
// filter on the server; State is judged on each record.
type gapFilter struct {
	Service  string
	Kind     events.Kind
	TenderID string
	// State is a worker.Pending* state, "open" (every open gap, the
	// default) or "all".
	State string
}

// keyFilter returns the subject filter of the gaps f can select by key:
// gap.<service>.<kind>.<tender>.<lot>[.<operator>].
func (f gapFilter) keyFilter() string {
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return gap.Token(s)
	}
	return stateSubject("gap." + tok(f.Service) + "." + tok(string(f.Kind)) + "." + tok(f.TenderID) + ".>")
}

// gapRow is one gap as the pages show it.
type gapRow struct {
	worker.PendingGap
	// Seq is the record's sequence in the bucket's stream.
	Seq uint64
}

// gapPage is a page of gaps.
type gapPage struct {
	Rows []gapRow
	// Next is the cursor of the next page (the sequence of the last record
	// read), 0 at the end.
	Next uint64
	// Scanned counts the records read; Partial is true when the page
	// stopped at scanCap before it was full; More estimates the records
	// left past the page.
	Scanned int
	Partial bool
	More    uint64
}

// gaps reads one page of gaps matching f, at most size, from the record
// after cursor on. It reads the records past the cursor that the key filter
// selects, up to the page's size, or up to scanCap when a state filter
// skips records: never the whole bucket.
func (r *reader) gaps(ctx context.Context, f gapFilter, after uint64, size int, svcs map[string]*outage.Service, settle time.Duration, now time.Time) (gapPage, error) {
	var p gapPage
	var decodeErr error
	last := after
	pending, err := r.eachMsg(ctx, stateStream, f.keyFilter(), after+1, scanCap, func(m *jetstream.RawStreamMsg) bool {
		p.Scanned++
		last = m.Sequence
		if deleted(m) {
			return true
		}
		open := !closedIn(m.Data)
		switch f.State {
		case "all":
		case "", "open":
			if !open {
				return true
			}
		case worker.PendingResolved, worker.PendingExempt:
			if open {
				return true
			}
		default:
			if !open {
				return true
			}
		}
		g := &gap.Gap{}
		if err := json.Unmarshal(m.Data, g); err != nil {
			decodeErr = fmt.Errorf("decode %s (sequence %d): %w", m.Subject, m.Sequence, err)
			return false
		}
		row := gapRow{PendingGap: worker.PendingOf(g, svcs[g.Service], settle, now), Seq: m.Sequence}
		if row.Key == "" {
			row.Key = m.Subject
		}
		if f.State != "" && f.State != "open" && f.State != "all" && row.State != f.State {
			return true
		}
		p.Rows = append(p.Rows, row)
		return len(p.Rows) < size
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return gapPage{}, err
	}
	p.More = pending
	if pending > 0 {
		p.Next = last
		p.Partial = len(p.Rows) < size
	}
	return p, nil
}

// closedIn reports whether a stored gap record is closed, reading only its
// open field.
func closedIn(raw []byte) bool {
	var g struct {
		Open bool `json:"open"`
	}
	return json.Unmarshal(raw, &g) == nil && !g.Open
}

// gapCounts caches the number of open gaps per service: counting them reads
// every gap record, so it is done at most once per countTTL, in the
// background, and a page waits for it only briefly.
type gapCounts struct {
	mu      sync.Mutex
	counts  map[string]int
	at      time.Time
	running chan struct{}
}

// countTTL is how long a count of the open gaps is shown before it is
// made again.
const countTTL = 15 * time.Second

// get returns the latest counts and when they were made, refreshing them if
// older than countTTL; it waits at most wait for a refresh. ok is false if
// no count was ever completed.
func (c *gapCounts) get(wait time.Duration, count func(context.Context) (map[string]int, error)) (map[string]int, time.Time, bool) {
	c.mu.Lock()
	if c.counts != nil && time.Since(c.at) < countTTL {
		defer c.mu.Unlock()
		return c.counts, c.at, true
	}
	if c.running == nil {
		done := make(chan struct{})
		c.running = done
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			m, err := count(ctx)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.running = nil
			if err == nil {
				c.counts, c.at = m, time.Now()
			}
		}()
	}
	running := c.running
	c.mu.Unlock()
	select {
	case <-running:
	case <-time.After(wait):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts, c.at, c.counts != nil
}

// countOpen counts the open gaps per service, reading every gap record.
func (r *reader) countOpen(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	_, err := r.eachMsgChunked(ctx, stateStream, stateSubject("gap.>"), 1, 0, countChunk, func(m *jetstream.RawStreamMsg) bool {
		var g struct {
			Service string `json:"service"`
			Open    bool   `json:"open"`
		}
		if !deleted(m) && json.Unmarshal(m.Data, &g) == nil && g.Open {
			out[g.Service]++
		}
		return true
	})
	return out, err
}

// output is one message of the output stream, decoded for the pages.
type output struct {
	Seq      uint64
	Received time.Time
	Subject  string
	Env      events.Envelope
	Type     events.Type
	// Class is reminder, advice, resolved, deadletter or delivery.
	Class    string
	Failed   bool
	Tenders  []string
	LotID    string
	Operator string
	Who      string
	Sequence int
	// The decoded data, by type; nil when undecodable.
	Reminder   *events.Reminder
	Resolved   *events.Resolved
	Advice     *events.Advice
	DeadLetter *events.DeadLetter
	Delivery   *events.Delivery
}

// When is the message's time: the event's own, else when the stream
// recorded it.
func (o *output) When() time.Time {
	if !o.Env.Time.IsZero() {
		return o.Env.Time
	}
	return o.Received
}

// classOf returns the class of an output type.
func classOf(t events.Type) string {
	switch t {
	case events.TypeReminderCIG, events.TypeReminderContribution, events.TypeReminderEscalation:
		return "reminder"
	case events.TypeReminderResolved:
		return "resolved"
	case events.TypeAdviceExtension:
		return "advice"
	case events.TypeDeadLetter:
		return "deadletter"
	case events.TypeDeliverySent, events.TypeDeliveryFailed:
		return "delivery"
	}
	return "other"
}

// classSubject returns the subject filter of the output class, "" for all.
func classSubject(s events.Subjects, class string) string {
	switch class {
	case "reminder":
		return s.Prefix + ".reminder.*"
	case "resolved":
		return s.Of(events.TypeReminderResolved)
	case "advice":
		return s.Prefix + ".advice.>"
	case "deadletter":
		return s.Of(events.TypeDeadLetter)
	case "delivery":
		return s.Prefix + ".delivery.>"
	}
	return ""
}

// decodeOutput decodes an output message; an undecodable one is kept with
// what its subject says.
func decodeOutput(s events.Subjects, m *jetstream.RawStreamMsg) *output {
	o := &output{Seq: m.Sequence, Received: m.Time, Subject: m.Subject, Type: s.TypeOf(m.Subject)}
	if err := json.Unmarshal(m.Data, &o.Env); err == nil && o.Env.Type != "" {
		o.Type = o.Env.Type
	}
	o.Class = classOf(o.Type)
	switch o.Type {
	case events.TypeReminderCIG, events.TypeReminderContribution, events.TypeReminderEscalation:
		var r events.Reminder
		if json.Unmarshal(o.Env.Data, &r) == nil {
			o.Reminder = &r
			o.Tenders, o.LotID, o.Operator, o.Who, o.Sequence = []string{r.TenderID}, r.LotID, r.OperatorFiscalCode, person(r.Recipient), r.Sequence
		}
	case events.TypeReminderResolved:
		var r events.Resolved
		if json.Unmarshal(o.Env.Data, &r) == nil {
			o.Resolved = &r
			o.Tenders, o.LotID, o.Operator, o.Who = []string{r.TenderID}, r.LotID, r.OperatorFiscalCode, person(r.Recipient)
		}
	case events.TypeAdviceExtension:
		var a events.Advice
		if json.Unmarshal(o.Env.Data, &a) == nil {
			o.Advice = &a
			o.Tenders, o.Who = []string{a.TenderID}, person(a.Recipient)
		}
	case events.TypeDeadLetter:
		var d events.DeadLetter
		if json.Unmarshal(o.Env.Data, &d) == nil {
			o.DeadLetter = &d
			if id := tenderOfInput(d.Data); id != "" {
				o.Tenders = []string{id}
			}
		}
	case events.TypeDeliverySent, events.TypeDeliveryFailed:
		var d events.Delivery
		if json.Unmarshal(o.Env.Data, &d) == nil {
			o.Delivery = &d
			o.Tenders, o.Who = d.TenderIDs, d.Address
			o.Failed = o.Type == events.TypeDeliveryFailed
		}
	}
	return o
}

// tenderOfInput returns the tender_id of a dead-lettered input, if its
// bytes are an event whose data names one.
func tenderOfInput(raw []byte) string {
	var ev struct {
		Data struct {
			TenderID string `json:"tender_id"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return ""
	}
	return ev.Data.TenderID
}

func person(p events.Person) string {
	switch {
	case p.Name == "":
		return p.Email
	case p.Email == "":
		return p.Name
	}
	return p.Name + " <" + p.Email + ">"
}

// outputBounds returns the first and last sequence of the output stream.
func (r *reader) outputBounds(ctx context.Context) (first, last uint64, err error) {
	st, err := r.js.Stream(ctx, worker.StreamOutput)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", worker.StreamOutput, err)
	}
	info := st.CachedInfo()
	return info.State.FirstSeq, info.State.LastSeq, nil
}

// window is the part of the output stream a listing read: sequences From
// to To (inclusive), newest first; Next is the cursor of older messages,
// 0 when the stream's start was reached.
type window struct {
	From, To, Next uint64
}

// latest returns up to limit output messages matching subject (all if
// empty) and keep, newest first, from the one before sequence before
// (0: the end of the stream) back, reading at most scan sequences (0: no
// limit).
func (r *reader) latest(ctx context.Context, s events.Subjects, subject string, before uint64, limit, scan int, keep func(m *jetstream.RawStreamMsg) bool) ([]*output, window, error) {
	first, last, err := r.outputBounds(ctx)
	if err != nil {
		return nil, window{}, err
	}
	hi := last + 1 // exclusive
	if before > 0 && before < hi {
		hi = before
	}
	win := window{To: hi - 1}
	floor := max(first, 1)
	if scan > 0 && hi > uint64(scan) && hi-uint64(scan) > floor {
		floor = hi - uint64(scan)
	}
	var out []*output
	for hi > floor {
		lo := hi - min(hi-floor, chunk)
		var got []*jetstream.RawStreamMsg
		_, err := r.eachMsg(ctx, worker.StreamOutput, subject, lo, int(hi-lo), func(m *jetstream.RawStreamMsg) bool {
			if m.Sequence >= hi {
				return false
			}
			got = append(got, m)
			return true
		})
		if err != nil {
			return nil, window{}, err
		}
		slices.Reverse(got)
		for _, m := range got {
			if keep != nil && !keep(m) {
				continue
			}
			out = append(out, decodeOutput(s, m))
			if len(out) == limit {
				win.From, win.Next = m.Sequence, m.Sequence
				if m.Sequence <= first {
					win.Next = 0
				}
				return out, win, nil
			}
		}
		hi = lo
	}
	win.From = hi
	if hi > first {
		win.Next = hi
	}
	return out, win, nil
}

// mentions returns a cheap test of whether an output message may be about
// a tender: its bytes contain the id as a JSON string (as encoding/json
// writes it, with or without HTML escaping); for a dead letter, the
// original bytes are looked at once decoded. decodeOutput confirms.
func mentions(id string) func(m *jetstream.RawStreamMsg) bool {
	quoted, _ := json.Marshal(id)
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(id)
	raw := bytes.TrimSpace(plain.Bytes())
	return func(m *jetstream.RawStreamMsg) bool {
		if bytes.Contains(m.Data, quoted) || bytes.Contains(m.Data, raw) {
			return true
		}
		if bytes.Contains(m.Data, []byte(`"deadletter"`)) {
			var env events.Envelope
			var d events.DeadLetter
			if json.Unmarshal(m.Data, &env) == nil && json.Unmarshal(env.Data, &d) == nil {
				return tenderOfInput(d.Data) == id
			}
		}
		return false
	}
}

// about reports whether a decoded output concerns tender id.
func (o *output) about(id string) bool { return slices.Contains(o.Tenders, id) }
