package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

const pendingUsage = `Usage: promemoria pending [flags]

Lists the open gaps of a running promemoria: lots still without their CIG and
bids admitted with reserve whose contribution is unpaid, with the reminders
sent, when the next one is due, the deadline and what the reminders wait for
(the service, the lot's CIG, or both). With --all it also lists resolved gaps
and bids on lots exempt from the contribution. It reads the state bucket and
changes nothing. The same data is served at GET /v1/pending.

Examples:
  promemoria pending
  promemoria pending --service smartcig --kind cig
  promemoria pending --tender ASP-2021-0112 --json
  promemoria pending --all --kind contribution

Exit status: 0 ok, 1 failed, 2 bad usage.
`

const servicesUsage = `Usage: promemoria services [flags]

Lists the ANAC services promemoria has seen, whether each is up or down and
since when, its latest outage and how many open gaps wait for it. The same
data is served at GET /v1/services.

Exit status: 0 ok, 1 failed, 2 bad usage.
`

func runPending(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("pending")
	var cf clientFlags
	cf.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON ({\"pending\": [...]}, as /v1/pending) instead of a table")
	service := fs.String("service", "", "only gaps waiting for this ANAC service (smartcig, pcp, payments, …)")
	tenderID := fs.String("tender", "", "only gaps of this tender id")
	kind := fs.String("kind", "", "only gaps of this kind: cig or contribution")
	all := fs.Bool("all", false, "also list resolved gaps and bids on exempt lots")
	settle := fs.Duration("settle", envDuration(getenv, "PROMEMORIA_SETTLE", 5*time.Minute),
		"the service's settle setting, to tell a settling service from a ready one (env PROMEMORIA_SETTLE)")
	pos, code := parseCommand(fs, "pending", pendingUsage, args, stdout, stderr)
	if code >= 0 {
		return code
	}
	cf.load(fs)
	if len(pos) > 0 {
		return usageError(stderr, "pending", fmt.Errorf("unexpected argument %q: pending takes only flags", pos[0]))
	}
	if k := events.Kind(*kind); k != "" && k != events.KindCIG && k != events.KindContribution {
		return usageError(stderr, "pending", fmt.Errorf("--kind %q: want cig or contribution", *kind))
	}
	kv, closeKV, err := openState(&cf, "promemoria-cli pending")
	if err != nil {
		fmt.Fprintf(stderr, "promemoria pending: %v\n", err)
		return 1
	}
	defer closeKV()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	now := time.Now()
	gaps, err := worker.Pending(ctx, kv, worker.PendingFilter{Service: *service, TenderID: *tenderID, Kind: events.Kind(*kind), All: *all}, *settle, now)
	if err != nil {
		fmt.Fprintf(stderr, "promemoria pending: %v\n", err)
		return 1
	}
	if *asJSON {
		return printJSON(stdout, stderr, struct {
			Pending []worker.PendingGap `json:"pending"`
		}{gaps})
	}
	writePendingTable(stdout, gaps, localClock)
	return 0
}

func runServices(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("services")
	var cf clientFlags
	cf.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON ({\"services\": [...]}, as /v1/services) instead of a table")
	pos, code := parseCommand(fs, "services", servicesUsage, args, stdout, stderr)
	if code >= 0 {
		return code
	}
	cf.load(fs)
	if len(pos) > 0 {
		return usageError(stderr, "services", fmt.Errorf("unexpected argument %q: services takes only flags", pos[0]))
	}
	kv, closeKV, err := openState(&cf, "promemoria-cli services")
	if err != nil {
		fmt.Fprintf(stderr, "promemoria services: %v\n", err)
		return 1
	}
	defer closeKV()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	svcs, err := worker.Services(ctx, kv)
	if err != nil {
		fmt.Fprintf(stderr, "promemoria services: %v\n", err)
		return 1
	}
	if *asJSON {
		return printJSON(stdout, stderr, struct {
			Services []worker.ServiceStatus `json:"services"`
		}{svcs})
	}
	writeServicesTable(stdout, svcs)
	return 0
}

// openState connects and binds promemoria's state bucket.
func openState(cf *clientFlags, name string) (jetstream.KeyValue, func(), error) {
	nc, err := cf.connect(name)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (jetstream.KeyValue, func(), error) { nc.Close(); return nil, nil, err }
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, worker.BucketState)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return fail(fmt.Errorf("no promemoria state on %s: bucket %s not found (has promemoria run against this server?)", nc.ConnectedUrlRedacted(), worker.BucketState))
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrNoResponders):
		return fail(fmt.Errorf("%s has no JetStream: is it the server promemoria uses?", nc.ConnectedUrlRedacted()))
	case err != nil:
		return fail(fmt.Errorf("open bucket %s: %w", worker.BucketState, err))
	}
	return kv, nc.Close, nil
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "promemoria: %v\n", err)
		return 1
	}
	return 0
}

// writePendingTable prints gaps as an aligned table, times written by clock.
func writePendingTable(w io.Writer, gaps []worker.PendingGap, clock func(time.Time) string) {
	if len(gaps) == 0 {
		fmt.Fprintln(w, "no open gaps")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENDER\tLOT\tKIND\tSERVICE\tOPERATOR\tSENT\tNEXT\tDEADLINE\tSTATE")
	for _, g := range gaps {
		op := g.OperatorFiscalCode
		if op == "" {
			op = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", g.TenderID, g.LotID, g.Kind, g.Service, op,
			g.RemindersSent, clock(g.NextDue), clock(g.Deadline), pendingState(g, clock))
	}
	_ = tw.Flush()
}

// pendingState says in words what a gap waits for.
func pendingState(g worker.PendingGap, clock func(time.Time) string) string {
	s := g.State
	switch g.State {
	case worker.PendingServiceDown:
		s = g.Service + " down"
	case worker.PendingSettling:
		s = "settling until " + clock(g.ReadyAt)
	case worker.PendingWaitingCIG:
		s = "waiting for the lot's CIG"
	}
	if g.State != worker.PendingWaitingCIG && slices.Contains(g.WaitingFor, worker.WaitingCIG) {
		s += ", no CIG yet"
	}
	if g.Escalated {
		s += ", escalated"
	}
	return s
}

// writeServicesTable prints services as an aligned table.
func writeServicesTable(w io.Writer, svcs []worker.ServiceStatus) {
	if len(svcs) == 0 {
		fmt.Fprintln(w, "no services seen yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tSINCE\tLAST OUTAGE\tOUTAGES\tOPEN GAPS")
	for _, s := range svcs {
		state, since := "up", localClock(s.UpSince)
		if !s.Up {
			state, since = "DOWN", localClock(s.DownSince)
		} else if !s.Reported {
			state = "up (never reported down)"
		}
		last := "-"
		if o := s.LastOutage; o != nil {
			to := "ongoing"
			if !o.To.IsZero() {
				to = localClock(o.To)
			}
			last = localClock(o.From) + " → " + to
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", s.Name, state, since, last, s.Outages, s.OpenGaps)
	}
	_ = tw.Flush()
}

// localClock formats t in local time, or "-" if it is zero.
func localClock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if v := getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return def
}
