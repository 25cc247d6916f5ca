package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// hostile is one bad input and the dead-letter reason it must get.
type hostile struct {
	name    string
	subject string
	body    []byte
	reason  events.Reason
	msgID   string
	seq     uint64 // its sequence on the input stream
}

// loadHostile reads testdata/hostile/<reason>/<subject>__<what>.json.
func loadHostile(t *testing.T) []*hostile {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile corpus in testdata/hostile: %v", err)
	}
	sort.Strings(files)
	var out []*hostile
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		subject, what, ok := strings.Cut(strings.TrimSuffix(filepath.Base(f), ".json"), "__")
		if !ok {
			t.Fatalf("%s: want <subject>__<what>.json", f)
		}
		reason := filepath.Base(filepath.Dir(f))
		out = append(out, &hostile{name: reason + "/" + what, subject: subject, body: body, reason: events.Reason(reason)})
	}
	return out
}

// generatedHostile builds the bad inputs too big or too relative to now to
// keep as files.
func generatedHostile(now time.Time) []*hostile {
	valid := func(id, title string) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://eproc.example.it/hostile","type":"tender.published","time":%q,`+
			`"datacontenttype":"application/json","data":{"tender_id":"T-HOSTILE","title":%q,"rup":{"name":"R","email":"r@comune.example.it"},`+
			`"published_at":%q,"offer_deadline":%q,"lots":[{"lot_id":"1"}]}}`, id, now.UTC().Format(time.RFC3339), title,
			now.Add(-time.Hour).UTC().Format(time.RFC3339), now.Add(30*24*time.Hour).UTC().Format(time.RFC3339)))
	}
	deep := `{"specversion":"1.0","id":"h-deep5000","source":"s","type":"tender.cancelled","time":"2021-05-04T10:00:00Z","data":` +
		strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + "}"
	return []*hostile{
		{name: "oversized/100KB", subject: "procurement.tender.published", body: valid("h-100k", strings.Repeat("x", 100<<10)), reason: events.ReasonOversized},
		{name: "oversized/900KB", subject: "procurement.tender.published", body: valid("h-900k", strings.Repeat("y", 900<<10)), reason: events.ReasonOversized},
		{name: "too_deep/5000 levels", subject: "procurement.tender.cancelled", body: []byte(deep), reason: events.ReasonTooDeep},
		{name: "too_deep/brackets only", subject: "procurement.portal.down", body: []byte(strings.Repeat("[", 60000)), reason: events.ReasonTooDeep},
		{name: "bad_time/time 25h ahead", subject: "procurement.tender.published",
			body: bytes.Replace(valid("h-25h", "x"), []byte(now.UTC().Format(time.RFC3339)), []byte(now.Add(25*time.Hour).UTC().Format(time.RFC3339)), 1), reason: events.ReasonBadTime},
	}
}

// TestHostileInputStream interleaves a few hundred good events with every
// bad input of the corpus (not JSON, wrong types, missing fields, unknown
// types, huge payloads, deep nesting, invalid UTF-8, times before 2000 or
// far ahead, bad CIGs) and with ids reused for different content. Each bad
// input ends on procurement.deadletter with its reason, subject, headers
// and original bytes, and names its place on the input stream; every good
// event is processed; the worker never stops.
func TestHostileInputStream(t *testing.T) {
	const good = 300
	start := time.Now()
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	w := startWorker(t, "worker", srv.URL(), "--repeat-interval", "1h")
	col := c.collect()
	now := time.Now()
	src := "https://eproc.example.it/hostile"

	bad := append(loadHostile(t), generatedHostile(now)...)
	goodEvent := func(i int) input {
		tid := fmt.Sprintf("T-GOOD-%03d", i)
		return event(events.TypeTenderPublished, src, fmt.Sprintf("good-%03d", i), now, events.TenderPublished{
			TenderID: tid, Title: "Gara " + tid, RUP: events.Person{Name: "RUP", Email: fmt.Sprintf("rup%d@comune.example.it", i)},
			PublishedAt: now.Add(-time.Hour), OfferDeadline: now.Add(30 * 24 * time.Hour),
			Lots: []events.Lot{{LotID: "1", CIGService: cigServices[i%4], BaseAmountCents: 10_000_000}},
		})
	}
	// The first good event, then ids reused: the same source and id with
	// different content.
	first := goodEvent(0)
	c.publish(first)
	waitFor(t, 30*time.Second, "the first good event applied", c.inputsDone)
	reused := goodEvent(0)
	reused.Body = bytes.Replace(first.Body, []byte(`"T-GOOD-000"`), []byte(`"T-REUSED"`), 1)
	// Within the input stream's 2-minute window, a publisher that follows
	// the contract (Nats-Msg-Id = id) is told the message is a duplicate and
	// nothing is stored: the publisher learns it from the PubAck.
	if ack := c.publish(reused); ack == nil || !ack.Duplicate {
		t.Errorf("a reused id within the duplicate window: PubAck %+v, want Duplicate", ack)
	}
	// After the window (simulated with another Nats-Msg-Id), the worker
	// sees it and dead-letters it: the seen-events bucket remembers ids 7 days.
	late := reused
	late.MsgID = "good-000/after-the-window"
	bad = append(bad, &hostile{name: "id_reused/different content after the window", subject: late.Subject, body: late.Body, reason: events.ReasonIDReused, msgID: late.MsgID})

	var ins []input
	byIndex := map[int]*hostile{}
	step := max(1, good/len(bad))
	b := 0
	for i := 1; i < good; i++ {
		ins = append(ins, goodEvent(i))
		if i%step == 0 && b < len(bad) {
			h := bad[b]
			if h.msgID == "" {
				h.msgID = fmt.Sprintf("hostile-%03d", b)
			}
			hdr := nats.Header{}
			hdr.Set("X-Test-Case", h.name)
			byIndex[len(ins)] = h
			ins = append(ins, input{Subject: h.subject, MsgID: h.msgID, Body: h.body, Header: hdr})
			b++
		}
	}
	for ; b < len(bad); b++ {
		h := bad[b]
		if h.msgID == "" {
			h.msgID = fmt.Sprintf("hostile-%03d", b)
		}
		hdr := nats.Header{}
		hdr.Set("X-Test-Case", h.name)
		byIndex[len(ins)] = h
		ins = append(ins, input{Subject: h.subject, MsgID: h.msgID, Body: h.body, Header: hdr})
	}
	// An exact duplicate without Nats-Msg-Id (a publisher that forgot it):
	// the worker skips it, no second reminder and no dead letter.
	dup := goodEvent(7)
	dup.MsgID = ""
	ins = append(ins, dup)
	for i, in := range ins { // in order, to know each message's sequence
		ack := c.publish(in)
		if h := byIndex[i]; h != nil && ack != nil {
			h.seq = ack.Sequence
		}
	}

	// Every input settled: each bad one dead-lettered (and acked), each good
	// one applied. A bad input that is neither is reported case by case.
	if !poll(15*time.Second, func() bool {
		return c.inputsDone() &&
			col.count(func(o out) bool { return o.Dead != nil }) >= len(bad) &&
			col.count(func(o out) bool { return o.Reminder != nil }) >= good
	}) {
		t.Errorf("after 15s not every input is settled: %s", c.diagnose(col))
	}
	col.waitCaughtUp(t)
	l := analyse(col.all())
	checkOutputs(t, l, true)

	dead := map[uint64]out{}
	for _, o := range l.Dead {
		if prev, ok := dead[o.Dead.Sequence]; ok {
			t.Errorf("input #%d dead-lettered twice: %s and %s", o.Dead.Sequence, prev, o)
		}
		dead[o.Dead.Sequence] = o
	}
	reasons := map[events.Reason]int{}
	for _, h := range bad {
		t.Run(h.name, func(t *testing.T) {
			o, ok := dead[h.seq]
			if !ok {
				t.Fatalf("input #%d on %s (%d bytes) was not dead-lettered; worker log: %s", h.seq, h.subject, len(h.body), w.grepLog(fmt.Sprintf(`"stream_sequence":%d,`, h.seq), "processing failed"))
			}
			d := o.Dead
			reasons[d.Reason]++
			if d.Reason != h.reason {
				t.Errorf("reason %q (%s), want %q", d.Reason, d.Error, h.reason)
			}
			switch {
			case d.Truncated:
				// Too large to fit in a dead letter: the first bytes, the size
				// and the digest of the whole.
				sum := sha256.Sum256(h.body)
				if !bytes.HasPrefix(h.body, d.Data) || len(d.Data) == 0 || d.Size != len(h.body) || d.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("truncated dead letter: %d bytes, size %d, sha256 %s; the input has %d bytes", len(d.Data), d.Size, d.SHA256, len(h.body))
				}
			case !bytes.Equal(d.Data, h.body) || d.Size != len(h.body):
				t.Errorf("dead letter carries %d bytes (size %d), not the original %d", len(d.Data), d.Size, len(h.body))
			}
			if d.Subject != h.subject || d.Stream != worker.StreamEvents || d.Error == "" || d.Deliveries < 1 {
				t.Errorf("dead letter subject %q stream %q error %q deliveries %d", d.Subject, d.Stream, d.Error, d.Deliveries)
			}
			if got := d.Headers[events.HeaderMsgID]; len(got) != 1 || got[0] != h.msgID {
				t.Errorf("dead letter headers %v lost Nats-Msg-Id %q", d.Headers, h.msgID)
			}
			if got := d.Headers["X-Test-Case"]; len(got) != 1 || got[0] != h.name {
				t.Errorf("dead letter headers %v lost X-Test-Case", d.Headers)
			}
			if want := fmt.Sprintf("dl-%s-%d", worker.StreamEvents, h.seq); o.Env.ID != want {
				t.Errorf("dead letter id %q, want %q", o.Env.ID, want)
			}
		})
	}
	if len(l.Dead) != len(bad) {
		t.Errorf("%d dead letters for %d bad inputs", len(l.Dead), len(bad))
	}
	for i := range good {
		k := gapKey{Kind: events.KindCIG, Tender: fmt.Sprintf("T-GOOD-%03d", i), Lot: "1"}
		if rs := l.Reminders[k]; len(rs) != 1 {
			t.Errorf("good tender %s: %d reminders, want 1", k.Tender, len(rs))
		}
	}
	for k := range l.Reminders {
		if !strings.HasPrefix(k.Tender, "T-GOOD-") {
			t.Errorf("reminder for %s, which only a bad input named", k)
		}
	}
	if w.starts != 1 || !w.Running() {
		t.Errorf("the worker stopped (started %d times)", w.starts)
	}
	t.Logf("%d good events and %d bad ones interleaved (+1 duplicate without Nats-Msg-Id, +1 reused id dropped by the stream's window)", good, len(bad))
	t.Logf("dead letters by reason: %v", reasons)
	t.Logf("%s; the worker never restarted; took %s", l.summary(), time.Since(start).Round(time.Second))

	// Two publishers that happen to use the same id are two events: the
	// contract identifies an event by source AND id. The input stream's
	// own window deduplicates on Nats-Msg-Id, which the contract sets to
	// the id alone (events/README.md: ids must be unique, e.g. UUIDs), so
	// within the window the second is dropped by the broker; past it (or
	// without the header) the worker keeps the two apart.
	t.Run("same id from another source is another event", func(t *testing.T) {
		other := goodEvent(0)
		other.Body = bytes.Replace(bytes.Replace(first.Body, []byte(`"T-GOOD-000"`), []byte(`"T-OTHER-SOURCE"`), 1),
			[]byte(src), []byte("https://another-platform.example.it"), 1)
		if ack := c.publish(other); ack == nil || !ack.Duplicate {
			t.Errorf("within the window the input stream should drop an id already used (Nats-Msg-Id = id, as the contract says): ack %+v", ack)
		}
		other.MsgID = "" // as it arrives past the stream's window
		c.publish(other)
		waitFor(t, 30*time.Second, "the other source's tender reminded", func() bool {
			return col.count(func(o out) bool { return o.Reminder != nil && o.Reminder.TenderID == "T-OTHER-SOURCE" }) == 1
		})
	})
}
