package console

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/worker"
)

// fillGaps writes n gap records straight into a fresh state bucket: gaps of
// tender T<i/10>, on pcp, every resolvedEvery-th one resolved.
func fillGaps(t testing.TB, n, resolvedEvery int) (*reader, jetstream.KeyValue) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: worker.BucketState, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		g := gap.Gap{Kind: events.KindCIG, Service: "pcp", TenderID: "T" + strconv.Itoa(i/10), LotID: strconv.Itoa(i % 10),
			Title: "Gara di prova", RUP: events.Person{Name: "RUP", Email: "rup@example.it"}, OpenedAt: opened, Open: i%resolvedEvery != 0}
		g.Key = gap.Key(g.Service, g.Identity())
		raw, _ := json.Marshal(g)
		if _, err := js.PublishAsync(stateSubject(g.Key), raw); err != nil {
			t.Fatal(err)
		}
		if i%10000 == 9999 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		t.Fatal("publishing the gaps did not complete")
	}
	return &reader{js: js, state: kv}, kv
}

// TestGapsPagesAreBounded checks that a page of gaps reads the records it
// shows, not the bucket, and that paging by cursor reaches every open gap
// once.
func TestGapsPagesAreBounded(t *testing.T) {
	const n, every = 3000, 100
	r, _ := fillGaps(t, n, every)
	ctx := context.Background()
	now := time.Now()
	svcs := map[string]*outage.Service{}

	p, err := r.gaps(ctx, gapFilter{State: "open"}, 0, 50, svcs, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 50 || p.Next == 0 || p.More == 0 {
		t.Fatalf("first page: %d rows, next %d, more %d", len(p.Rows), p.Next, p.More)
	}
	if read := r.read.Load(); read > 52 {
		t.Errorf("the first page of 50 read %d records of %d", read, n)
	}

	seen := map[string]bool{}
	var after uint64
	pages := 0
	for {
		r.read.Store(0)
		p, err := r.gaps(ctx, gapFilter{}, after, 200, svcs, 0, now)
		if err != nil {
			t.Fatal(err)
		}
		if read := r.read.Load(); read > 200+200/every+2 {
			t.Errorf("page %d read %d records for %d rows", pages, read, len(p.Rows))
		}
		for _, row := range p.Rows {
			if seen[row.Key] {
				t.Errorf("%s on two pages", row.Key)
			}
			seen[row.Key] = true
		}
		pages++
		if p.Next == 0 {
			break
		}
		after = p.Next
	}
	if want := n - n/every; len(seen) != want {
		t.Errorf("paging saw %d open gaps, want %d", len(seen), want)
	}

	r.read.Store(0)
	p, err = r.gaps(ctx, gapFilter{TenderID: "T42"}, 0, 50, svcs, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 10 || r.read.Load() != 10 {
		t.Errorf("tender T42: %d rows from %d records, want 10 and 10", len(p.Rows), r.read.Load())
	}
	p, err = r.gaps(ctx, gapFilter{State: worker.PendingResolved}, 0, 50, svcs, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != n/every {
		t.Errorf("resolved: %d rows, want %d", len(p.Rows), n/every)
	}
}

// TestGapsAtScale measures the Gaps page's reads on PROMEMORIA_CONSOLE_GAPS
// records (for the README's figures, e.g. 1000000); skipped unless set.
func TestGapsAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PROMEMORIA_CONSOLE_GAPS"))
	if n <= 0 {
		t.Skip("set PROMEMORIA_CONSOLE_GAPS=1000000 to measure the Gaps page on that many gaps")
	}
	start := time.Now()
	r, _ := fillGaps(t, n, 100)
	t.Logf("wrote %d gaps in %s", n, time.Since(start).Round(time.Second))
	ctx := context.Background()
	svcs := map[string]*outage.Service{}
	measure := func(name string, f gapFilter, after uint64) gapPage {
		r.read.Store(0)
		start := time.Now()
		p, err := r.gaps(ctx, f, after, 50, svcs, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-34s %3d rows, %6d records read, %s", name, len(p.Rows), r.read.Load(), time.Since(start).Round(100*time.Microsecond))
		return p
	}
	first := measure("first page", gapFilter{}, 0)
	measure("next page", gapFilter{}, first.Next)
	measure("a page deep in the bucket", gapFilter{}, uint64(n*9/10))
	measure(fmt.Sprintf("tender T%d (last written)", (n-1)/10), gapFilter{TenderID: fmt.Sprintf("T%d", (n-1)/10)}, 0)
	measure("state resolved (1 in 100)", gapFilter{State: worker.PendingResolved}, 0)
	start = time.Now()
	counts, err := r.countOpen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counting the open gaps of every service (Services page, cached 15s): %v in %s", counts, time.Since(start).Round(time.Millisecond))
}
