package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

const demoUsage = `Usage: promemoria demo [flags]

Replays the ANAC outage of May 2021 on an embedded NATS server (in a
temporary directory, removed at the end) with a clock of its own that runs
from Thursday 6 May 2021 at two hours a second, and prints every reminder and
advice as promemoria emits it. The portal went down on Monday 3 May; tenders
were published with the CIG "in fase di acquisizione" and bids admitted with
reserve. Payments come back first, so contribution reminders go (for lots
that have a CIG) while CIG reminders wait; Smart CIG and SIMOG come back; the
RUPs get their reminders, repeats and the art. 25 advice; CIGs and payments
arrive and the gaps are resolved. It needs nothing else, ignores NATS_URL and
the PROMEMORIA_* variables, and takes about 20 seconds.

With --keep the service keeps running once the story is told, its clock
stopped at the story's end, with the web console on --http-listen (default
127.0.0.1:8080): open it to see the services' outages of May 2021, the gaps
(state "All"), each tender's messages and the dead letter. Ctrl-C stops it
and removes its data.

Exit status: 0 the story ran as expected, 1 it did not, 2 bad usage.
`

// The demo's clock runs demoRate times faster than the wall clock (at
// speed 1) from demoStart; its timings are in its own time.
const (
	demoRate     = 7200 // two hours a second
	demoSettle   = time.Hour
	demoRepeat   = 4 * time.Hour
	demoEscalate = 5 * 24 * time.Hour
	demoHours    = "Mon-Fri 08:00-20:00"
	// demoStepTimeout bounds each wait (wall clock); demoTimeout the whole story.
	demoStepTimeout = 20 * time.Second
	demoTimeout     = 55 * time.Second
)

var (
	demoRome  = calendar.Rome()
	demoStart = time.Date(2021, time.May, 6, 11, 0, 0, 0, demoRome)
)

// demoClock is the demo's time: from v0 at real time r0, rate times faster,
// until it is stopped.
type demoClock struct {
	r0, v0 time.Time
	rate   float64
	// stopped, once set, is the time the clock shows from then on.
	stopped atomic.Pointer[time.Time]
}

func (c *demoClock) Now() time.Time {
	if t := c.stopped.Load(); t != nil {
		return *t
	}
	return c.v0.Add(time.Duration(float64(time.Since(c.r0)) * c.rate))
}

// Stop stops the clock at the time it shows.
func (c *demoClock) Stop() {
	t := c.Now()
	c.stopped.Store(&t)
}

// ToServer maps a time of the demo's clock to the wall clock the broker
// fires its timers by.
func (c *demoClock) ToServer(v time.Time) time.Time {
	return c.r0.Add(time.Duration(float64(v.Sub(c.v0)) / c.rate))
}

// Real returns how long a span of the demo's time lasts on the wall clock.
func (c *demoClock) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.rate) }

func runDemo(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDemoContext(ctx, args, getenv, stdout, stderr)
}

// runDemoContext is runDemo until ctx ends (a signal, or a test).
func runDemoContext(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo")
	speed := fs.Float64("speed", 1, "time compression: 2 runs the story twice as fast (0.5 to 5)")
	verbose := fs.Bool("verbose", false, "also print the service's logs on standard error")
	keep := fs.Bool("keep", false, "keep the service running after the story, with the web console, until Ctrl-C")
	httpListen := fs.String("http-listen", "127.0.0.1:8080", "address of the web console with --keep")
	pos, code := parseCommand(fs, "demo", demoUsage, args, stdout, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "demo", fmt.Errorf("unexpected argument %q: demo takes only flags", pos[0]))
	}
	if !(*speed >= 0.5 && *speed <= 5) {
		return usageError(stderr, "demo", fmt.Errorf("--speed %v: want a number from 0.5 to 5", *speed))
	}
	level := zerolog.ErrorLevel
	if *verbose {
		level = zerolog.InfoLevel
	}
	d := &demo{
		out:   &syncWriter{w: stdout},
		log:   zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}).Level(level).With().Timestamp().Logger(),
		speed: *speed,
		keep:  *keep,
		http:  *httpListen,
		ids:   map[string]bool{},
		shown: map[string]bool{},
	}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stderr, "promemoria demo: %v\n", err)
		return 1
	}
	return 0
}

// isTerminal reports whether w is a terminal (logs are coloured only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// syncWriter serialises writes from the narration and the consumer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// demoMsg is a message seen on the output stream.
type demoMsg struct {
	typ      events.Type
	kind     events.Kind
	tender   string
	lot      string
	operator string
	seq      int
}

type demo struct {
	out   *syncWriter
	log   zerolog.Logger
	speed float64
	// keep leaves the service running after the story, with the console
	// on http.
	keep  bool
	http  string
	clock *demoClock
	subj  events.Subjects
	app   *app.App
	js    jetstream.JetStream
	n     int

	mu    sync.Mutex
	msgs  []demoMsg
	ids   map[string]bool
	dupes []string
	shown map[string]bool // message kinds whose text was printed
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// stamp formats a time of the story, in Rome.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(demoRome).Format("Mon 2 Jan 15:04")
}

// The cast. Names, codes and addresses are invented.
var (
	rupA = events.Person{Name: "Ing. Laura Bianchi", Email: "laura.bianchi@comune-valfiorita.example"}
	rupB = events.Person{Name: "Dott. Marco Rossi", Email: "rup.gare@asp-montelago.example"}
	rupC = events.Person{Name: "Arch. Giulia Verdi", Email: "giulia.verdi@provincia-montelago.example"}
	oe1  = events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l.", Email: "gare@pec.edilstrade.example"}
	oe2  = events.Operator{FiscalCode: "09876543210", Name: "Costruzioni Alpine S.p.A.", Email: "ufficiogare@pec.costruzionialpine.example"}
	oe3  = events.Operator{FiscalCode: "RSSMRA70A01F205X", Name: "Mario Rossi", Email: "mario.rossi@pec.example"}
	oe4  = events.Operator{FiscalCode: "04567891230", Name: "Sanitaria Lombarda S.r.l.", Email: "gare@pec.sanitarialombarda.example"}
)

const (
	tenderA = "VALF-2021-014"
	tenderB = "ASP-2021-0112"
	tenderC = "PRV-2021-0033"
)

// The story's dates, in Rome.
var (
	outageFrom  = time.Date(2021, time.May, 3, 9, 0, 0, 0, demoRome)
	publishedAB = time.Date(2021, time.May, 4, 10, 0, 0, 0, demoRome)
	paymentsUp  = time.Date(2021, time.May, 6, 12, 0, 0, 0, demoRome)
	cigUp       = time.Date(2021, time.May, 7, 8, 0, 0, 0, demoRome)
)

func (d *demo) run(appCtx context.Context) error {
	ctx, cancel := context.WithTimeout(appCtx, demoTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "promemoria-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	httpListen := ""
	if d.keep {
		httpListen = d.http
	}
	cfg, err := config.Load("demo", []string{
		"--data-dir", dir, "--listen", "127.0.0.1:0", "--http-listen", httpListen,
		"--settle", demoSettle.String(), "--repeat-interval", demoRepeat.String(), "--escalate-before", demoEscalate.String(),
		// The demo's clock runs thousands of times faster than the broker's
		// timers resolve (a second): long office hours keep the story from
		// depending on the machine's load.
		"--office-hours", demoHours,
		"--jetstream-max-memory", "67108864", "--jetstream-max-store", "268435456",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		return err
	}
	d.subj, _ = events.NewSubjects(cfg.SubjectPrefix)
	d.clock = &demoClock{r0: time.Now(), v0: demoStart, rate: demoRate * d.speed}
	// The service runs until the demo ends (appCtx), the story within
	// demoTimeout (ctx).
	d.app, err = app.Start(appCtx, cfg, d.log, app.Options{Name: "demo", Now: d.clock.Now, ToServer: d.clock.ToServer})
	if err != nil {
		return fmt.Errorf("start promemoria: %w", err)
	}
	defer func() { _ = d.app.Stop() }()
	nc, err := nats.Connect(d.app.ClientURL(), nats.Name("promemoria demo"))
	if err != nil {
		return err
	}
	defer nc.Close()
	if d.js, err = jetstream.New(nc); err != nil {
		return err
	}
	cons, err := d.js.OrderedConsumer(ctx, worker.StreamOutput, jetstream.OrderedConsumerConfig{FilterSubjects: d.subj.Outputs()})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(d.onOutput)
	if err != nil {
		return err
	}
	defer cc.Stop()

	d.printf("promemoria demo: the ANAC outage of May 2021, replayed on a clock that runs %g hours a second.\n", demoRate*d.speed/3600)
	d.printf("Embedded NATS with JetStream at %s. Settle %s, repeat every %s, escalation %s before a deadline,\n",
		d.app.ClientURL(), demoSettle, demoRepeat, demoEscalate)
	d.printf("office hours %s. Lines starting with a date are messages promemoria published, at that time of\n", demoHours)
	d.printf("the story; the full text is shown for the first message of each kind.\n")

	if err := d.story(ctx); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return errors.New("interrupted")
		}
		return err
	}
	cc.Stop()
	if err := d.summary(ctx); err != nil || !d.keep {
		return err
	}
	d.clock.Stop()
	d.printf("\nThe service keeps running, its clock stopped at %s, with the web console at\n", stamp(d.clock.Now()))
	d.printf("    http://%s/\n", d.app.HTTPAddr())
	d.printf("Services shows the outages of May 2021 on each service's timeline; Gaps, with State \"All\", the\n")
	d.printf("gaps of the story, now resolved; Tender %s its lots, bids, gaps and every message\n", tenderB)
	d.printf("in order; Activity the reminders, advices and the dead letter (open it for its reason and bytes).\n")
	d.printf("NATS is at %s. Ctrl-C stops the service and removes its data.\n", d.app.ClientURL())
	<-appCtx.Done()
	return nil
}

func (d *demo) story(ctx context.Context) error {
	d.chapter("Mon 3 May 2021", "A power supply fault at ANAC's seat takes the whole portal down.")
	if err := d.publish(ctx, events.TypePortalDown, "all services, since Mon 3 May 09:00", events.PortalChange{
		At: outageFrom, Notice: "Guasto all'alimentazione elettrica presso la sede ANAC: portale non disponibile",
	}); err != nil {
		return err
	}
	if err := d.waitServices(ctx, "the portal to be down", func(s map[string]worker.ServiceStatus) bool {
		return !s["payments"].Up && !s["smartcig"].Up && !s["simog"].Up
	}); err != nil {
		return err
	}

	d.chapter("Tue 4 - Wed 5 May", "Urgent tenders are published with the CIG \"in fase di acquisizione\", and "+
		"bidders who could not pay the ANAC contribution are admitted \"con riserva\". (The events reach "+
		"promemoria now, on Thursday morning; they carry their own dates.)")
	cigC, _ := cig.GenerateSIMOGv1(8734512)
	steps := []struct {
		typ     events.Type
		summary string
		data    any
	}{
		{events.TypeTenderPublished, tenderA + " Comune di Valfiorita, lot 1 (35.000 €): Smart CIG pending",
			events.TenderPublished{TenderID: tenderA, Title: "Manutenzione straordinaria del verde pubblico",
				Authority: events.Authority{FiscalCode: "80001230125", Name: "Comune di Valfiorita"}, RUP: rupA,
				PublishedAt: publishedAB, OfferDeadline: time.Date(2021, time.May, 24, 12, 0, 0, 0, demoRome),
				Lots: []events.Lot{{LotID: "1", CIGService: "smartcig", BaseAmountCents: 35_000_00}}}},
		{events.TypeTenderPublished, tenderB + " ASP di Montelago, lot 1 (450.000 €): CIG pending from SIMOG; offers due Mon 10 May 12:00",
			events.TenderPublished{TenderID: tenderB, Title: "Fornitura urgente di dispositivi di protezione individuale",
				Authority: events.Authority{FiscalCode: "01122334455", Name: "Azienda Sanitaria Provinciale di Montelago"}, RUP: rupB,
				PublishedAt: publishedAB, OfferDeadline: time.Date(2021, time.May, 10, 12, 0, 0, 0, demoRome),
				Lots: []events.Lot{{LotID: "1", CIGService: "simog", BaseAmountCents: 450_000_00}}}},
		{events.TypeTenderPublished, tenderC + " Provincia di Montelago, lot 1 (450.000 €): CIG " + cigC + ", offers closed Mon 3 May",
			events.TenderPublished{TenderID: tenderC, Title: "Rifacimento della copertura della scuola media",
				Authority: events.Authority{FiscalCode: "80009870123", Name: "Provincia di Montelago"}, RUP: rupC,
				PublishedAt: time.Date(2021, time.April, 12, 10, 0, 0, 0, demoRome), OfferDeadline: time.Date(2021, time.May, 3, 12, 0, 0, 0, demoRome),
				Lots: []events.Lot{{LotID: "1", CIG: cigC, BaseAmountCents: 450_000_00}}}},
		{events.TypeAdmittedWithReserve, tenderC + " lot 1: " + oe1.Name + " admitted with reserve",
			events.AdmittedWithReserve{TenderID: tenderC, LotID: "1", Operator: oe1}},
		{events.TypeAdmittedWithReserve, tenderC + " lot 1: " + oe2.Name + " admitted with reserve, to pay by Fri 21 May 12:00",
			events.AdmittedWithReserve{TenderID: tenderC, LotID: "1", Operator: oe2, RegulariseBy: time.Date(2021, time.May, 21, 12, 0, 0, 0, demoRome)}},
		{events.TypeAdmittedWithReserve, tenderB + " lot 1: " + oe4.Name + " admitted with reserve (the lot has no CIG yet)",
			events.AdmittedWithReserve{TenderID: tenderB, LotID: "1", Operator: oe4}},
		{events.TypeAdmittedWithReserve, tenderA + " lot 1: " + oe3.Name + " admitted with reserve (35.000 €: exempt)",
			events.AdmittedWithReserve{TenderID: tenderA, LotID: "1", Operator: oe3}},
	}
	for _, st := range steps {
		if err := d.publish(ctx, st.typ, st.summary, st.data); err != nil {
			return err
		}
	}
	if err := d.waitPending(ctx, "five open gaps", func(p []worker.PendingGap) bool { return len(p) == 5 }); err != nil {
		return err
	}
	d.printf("        promemoria remembers 5 gaps (the bid on the 35.000 € lot owes nothing); no reminder goes\n")
	d.printf("        while their services are down. The offer deadline of %s is near: its RUP is warned.\n", tenderB)
	if err := d.waitMsgs(ctx, "the escalation", func(m demoMsg) bool {
		return m.typ == events.TypeReminderEscalation && m.tender == tenderB
	}, 1); err != nil {
		return err
	}

	d.chapter("Thu 6 May", "Most services are back at 12:00, payments included; Smart CIG and SIMOG still fail.")
	if err := d.until(ctx, paymentsUp); err != nil {
		return err
	}
	if err := d.publish(ctx, events.TypePortalUp, "payments, fvoe, pcp, bdncp, ausa, at 12:00",
		events.PortalChange{Services: []string{"payments", "fvoe", "pcp", "bdncp", "ausa"}, At: paymentsUp,
			Notice: "I servizi del portale ANAC sono nuovamente disponibili, ad eccezione di Smart CIG e SIMOG"}); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "the contribution reminders", func(m demoMsg) bool {
		return m.typ == events.TypeReminderContribution && m.seq == 1
	}, 2); err != nil {
		return err
	}
	d.chapter("", "Both bidders pay.")
	for _, p := range []events.ContributionPaid{
		{TenderID: tenderC, LotID: "1", OperatorFiscalCode: oe1.FiscalCode, Receipt: "IUV 01234567890123456"},
		{TenderID: tenderC, LotID: "1", OperatorFiscalCode: oe2.FiscalCode, Receipt: "IUV 98765432109876543"},
	} {
		if err := d.publish(ctx, events.TypeContributionPaid, fmt.Sprintf("%s lot 1: %s paid, receipt %s", p.TenderID, p.OperatorFiscalCode, p.Receipt), p); err != nil {
			return err
		}
	}
	if err := d.waitMsgs(ctx, "the contribution gaps to be resolved", func(m demoMsg) bool {
		return m.typ == events.TypeReminderResolved && m.tender == tenderC
	}, 2); err != nil {
		return err
	}
	d.printf("\n        $ promemoria pending\n")
	gaps, err := worker.Pending(ctx, d.app.Worker().State(), worker.PendingFilter{}, d.app.Worker().Settle(), d.clock.Now())
	if err != nil {
		return err
	}
	var table strings.Builder
	writePendingTable(&table, gaps, stamp)
	d.printf("%s", indent(table.String(), "        "))

	if err := d.until(ctx, cigUp); err != nil {
		return err
	}
	d.chapter("Fri 7 May", "Smart CIG and SIMOG are back at 08:00: the RUPs are asked for their CIGs, and advised "+
		"on their offer deadlines.")
	if err := d.publish(ctx, events.TypePortalUp, "smartcig, simog, at 08:00",
		events.PortalChange{Services: []string{"smartcig", "simog"}, At: cigUp}); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "the CIG reminders", func(m demoMsg) bool {
		return m.typ == events.TypeReminderCIG && m.seq == 1
	}, 2); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "the advices", func(m demoMsg) bool { return m.typ == events.TypeAdviceExtension }, 2); err != nil {
		return err
	}
	d.chapter("", "No CIG yet: the reminders repeat.")
	if err := d.waitMsgs(ctx, "a repeated CIG reminder", func(m demoMsg) bool {
		return m.typ == events.TypeReminderCIG && m.seq == 2
	}, 1); err != nil {
		return err
	}

	cigA, _ := cig.GenerateSmart('Z', 0x31A2B7C)
	cigB, _ := cig.GenerateSIMOGv2('B', 0x0A1F3C)
	typo := cigB[:9] + string("0123456789ABCDEF"[(strings.IndexByte("0123456789ABCDEF", cigB[9])+1)%16])
	d.chapter("", "The RUP of "+tenderB+" mistypes the CIG: the worker dead-letters it and keeps the gap open.")
	if err := d.publishUnchecked(ctx, events.TypeCIGAssigned, tenderB+" lot 1: CIG "+typo,
		events.CIGAssigned{TenderID: tenderB, LotID: "1", CIG: typo}); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "the dead letter", func(m demoMsg) bool { return m.typ == events.TypeDeadLetter }, 1); err != nil {
		return err
	}
	lower := " " + strings.ToLower(cigB) + " "
	d.chapter("", "The CIGs are acquired (one typed in lower case, with spaces: it is accepted); the bidder "+
		"admitted to "+tenderB+" can now pay, and is reminded with the CIG.")
	if err := d.publish(ctx, events.TypeCIGAssigned, tenderA+" lot 1: Smart CIG "+cigA,
		events.CIGAssigned{TenderID: tenderA, LotID: "1", CIG: cigA}); err != nil {
		return err
	}
	if err := d.publish(ctx, events.TypeCIGAssigned, fmt.Sprintf("%s lot 1: CIG %q", tenderB, lower),
		events.CIGAssigned{TenderID: tenderB, LotID: "1", CIG: lower}); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "the reminder to "+oe4.Name, func(m demoMsg) bool {
		return m.typ == events.TypeReminderContribution && m.operator == oe4.FiscalCode
	}, 1); err != nil {
		return err
	}
	d.chapter("", oe4.Name+" pays: every gap is closed.")
	if err := d.publish(ctx, events.TypeContributionPaid, tenderB+" lot 1: "+oe4.Name+" paid, receipt IUV 55501234567890123",
		events.ContributionPaid{TenderID: tenderB, LotID: "1", OperatorFiscalCode: oe4.FiscalCode, Receipt: "IUV 55501234567890123"}); err != nil {
		return err
	}
	if err := d.waitMsgs(ctx, "every gap to be resolved", func(m demoMsg) bool { return m.typ == events.TypeReminderResolved }, 5); err != nil {
		return err
	}
	return d.waitPending(ctx, "no open gap", func(p []worker.PendingGap) bool { return len(p) == 0 })
}

func (d *demo) summary(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	count := map[events.Type]int{}
	for _, m := range d.msgs {
		count[m.typ]++
	}
	reminders := count[events.TypeReminderCIG] + count[events.TypeReminderContribution] + count[events.TypeReminderEscalation] + count[events.TypeReminderResolved]
	d.printf("\nDone in %.1fs: %d reminders (%d contribution, %d cig, %d escalation, %d resolved), %d advices and %d dead letter.\n",
		time.Since(d.clock.r0).Seconds(), reminders, count[events.TypeReminderContribution], count[events.TypeReminderCIG],
		count[events.TypeReminderEscalation], count[events.TypeReminderResolved], count[events.TypeAdviceExtension], count[events.TypeDeadLetter])
	if len(d.dupes) > 0 {
		return fmt.Errorf("messages published twice: %s", strings.Join(d.dupes, ", "))
	}
	d.printf("Open gaps left: 0. No message was sent twice: each id derives from the gap, its kind and sequence.\n")
	d.printf("Next: \"promemoria serve\" runs the service; feed it with \"promemoria publish\" and watch \"promemoria pending\".\n")
	return ctx.Err()
}

// until waits until the story's clock reaches t.
func (d *demo) until(ctx context.Context, t time.Time) error {
	wait := d.clock.Real(t.Sub(d.clock.Now()))
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// chapter prints a step of the story: its date, if it has one, then what
// happens.
func (d *demo) chapter(date, text string) {
	if date != "" {
		d.printf("\n== %s\n", date)
	} else {
		d.printf("\n")
	}
	d.printf("%s", wrap(text, 96, "   "))
}

// publish validates and publishes an input event as "promemoria publish"
// does.
func (d *demo) publish(ctx context.Context, typ events.Type, summary string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	d.n++
	id := fmt.Sprintf("demo-%03d", d.n)
	lim := events.DefaultLimits()
	lim.Now = d.clock.Now
	body, err := buildEvent(typ, "promemoria-demo", id, d.clock.Now(), raw, lim)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	d.printf("   > %-26s %s\n", typ, summary)
	_, err = publishRaw(ctx, d.js, d.subj.Of(typ), id, typ, body)
	return err
}

// publishUnchecked publishes an event without validating it first, to show
// what the worker does with an invalid one.
func (d *demo) publishUnchecked(ctx context.Context, typ events.Type, summary string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	d.n++
	id := fmt.Sprintf("demo-%03d", d.n)
	body, err := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: "promemoria-demo", Type: typ,
		Time: d.clock.Now(), DataContentType: events.ContentType, Data: raw})
	if err != nil {
		return err
	}
	d.printf("   > %-26s %s\n", typ, summary)
	_, err = publishRaw(ctx, d.js, d.subj.Of(typ), id, typ, body)
	return err
}

// waitFor polls cond until it holds, the step times out or ctx ends.
func (d *demo) waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, demoStepTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitMsgs waits until n messages that match have been seen.
func (d *demo) waitMsgs(ctx context.Context, what string, match func(demoMsg) bool, n int) error {
	return d.waitFor(ctx, what, func() (bool, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		c := 0
		for _, m := range d.msgs {
			if match(m) {
				c++
			}
		}
		return c >= n, nil
	})
}

func (d *demo) waitPending(ctx context.Context, what string, cond func([]worker.PendingGap) bool) error {
	w := d.app.Worker()
	return d.waitFor(ctx, what, func() (bool, error) {
		p, err := worker.Pending(ctx, w.State(), worker.PendingFilter{}, w.Settle(), d.clock.Now())
		return err == nil && cond(p), err
	})
}

func (d *demo) waitServices(ctx context.Context, what string, cond func(map[string]worker.ServiceStatus) bool) error {
	return d.waitFor(ctx, what, func() (bool, error) {
		list, err := worker.Services(ctx, d.app.Worker().State())
		if err != nil {
			return false, err
		}
		m := map[string]worker.ServiceStatus{}
		for _, s := range list {
			m[s.Name] = s
		}
		return cond(m), nil
	})
}

// onOutput prints a message of the output stream and records it.
func (d *demo) onOutput(msg jetstream.Msg) {
	var env events.Envelope
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		d.printf("   ! unreadable message on %s: %v\n", msg.Subject(), err)
		return
	}
	at := stamp(env.Time)
	switch env.Type {
	case events.TypeAdviceExtension:
		var a events.Advice
		if err := json.Unmarshal(env.Data, &a); err != nil {
			d.printf("   ! unreadable %s: %v\n", env.Type, err)
			return
		}
		d.record(env.ID, demoMsg{typ: env.Type, tender: a.TenderID})
		var b strings.Builder
		fmt.Fprintf(&b, "%s  %s  %s  -> %s\n", at, env.Type, a.TenderID, person(a.Recipient))
		fmt.Fprintf(&b, "        [overlap %s; deadline %s, proposed %s; %s]\n", time.Duration(a.OverlapSeconds)*time.Second,
			stamp(a.Deadline), stamp(a.ProposedDeadline), a.LegalBasis)
		b.WriteString(d.text(string(env.Type), a.Message.IT))
		d.printf("%s", b.String())
	case events.TypeReminderCIG, events.TypeReminderContribution, events.TypeReminderEscalation:
		var r events.Reminder
		if err := json.Unmarshal(env.Data, &r); err != nil {
			d.printf("   ! unreadable %s: %v\n", env.Type, err)
			return
		}
		d.record(env.ID, demoMsg{typ: env.Type, kind: r.Kind, tender: r.TenderID, lot: r.LotID, operator: r.OperatorFiscalCode, seq: r.Sequence})
		d.printReminder(at, env.Type, &r)
	case events.TypeReminderResolved:
		var r events.Resolved
		if err := json.Unmarshal(env.Data, &r); err != nil {
			d.printf("   ! unreadable %s: %v\n", env.Type, err)
			return
		}
		d.record(env.ID, demoMsg{typ: env.Type, kind: r.Kind, tender: r.TenderID, lot: r.LotID, operator: r.OperatorFiscalCode})
		var b strings.Builder
		fmt.Fprintf(&b, "%s  %s  %s lot %s, after %d reminder(s)  -> %s\n", at, env.Type, r.TenderID, r.LotID, r.RemindersSent, person(r.Recipient))
		b.WriteString(d.text(string(env.Type)+" "+string(r.Kind)+" "+string(r.Resolution.By), r.Message.IT))
		d.printf("%s", b.String())
	case events.TypeDeadLetter:
		var dl events.DeadLetter
		if err := json.Unmarshal(env.Data, &dl); err != nil {
			d.printf("   ! unreadable %s: %v\n", env.Type, err)
			return
		}
		d.record(env.ID, demoMsg{typ: env.Type})
		d.printf("%s  %s  %s refused: %s\n", at, env.Type, d.subj.TypeOf(dl.Subject), dl.Error)
	}
}

// text returns the message's text, indented, the first time a message of
// its kind is printed; "" after.
func (d *demo) text(kind, text string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shown[kind] {
		return ""
	}
	d.shown[kind] = true
	return wrap(text, 96, "        ") + "\n"
}

func (d *demo) record(id string, m demoMsg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids[id] {
		d.dupes = append(d.dupes, id)
	}
	d.ids[id] = true
	d.msgs = append(d.msgs, m)
}

func (d *demo) printReminder(at string, typ events.Type, r *events.Reminder) {
	var b strings.Builder
	what := fmt.Sprintf("%s lot %s", r.TenderID, r.LotID)
	if r.OperatorFiscalCode != "" {
		what += " operator " + r.OperatorFiscalCode
	}
	to := "-> " + person(r.Recipient)
	for _, cc := range r.CC {
		to += ", cc " + cc.Name
	}
	if typ != events.TypeReminderEscalation && r.Sequence > 1 {
		// A repeat: the text is the first one's, with its number.
		fmt.Fprintf(&b, "%s  %s #%d  %s  %s (sollecito n. %d)\n", at, typ, r.Sequence, what, to, r.Sequence)
		d.printf("%s", b.String())
		return
	}
	svc := r.Service + " up"
	if !r.ServiceUp {
		svc = r.Service + " still down"
	}
	if o := r.Outage; o != nil && o.To.IsZero() {
		svc += ", outage since " + stamp(o.From)
	} else if o != nil {
		svc += fmt.Sprintf(", outage %s to %s", stamp(o.From), stamp(o.To))
	}
	if r.ContributionCents > 0 {
		svc += fmt.Sprintf("; %d,%02d € (%s)", r.ContributionCents/100, r.ContributionCents%100, r.ContributionTable)
	}
	deadline := "deadline " + stamp(r.Deadline)
	if r.Deadline.IsZero() {
		deadline = "no deadline"
	}
	seq := fmt.Sprintf(" #%d", r.Sequence)
	if typ == events.TypeReminderEscalation {
		seq = ""
	}
	fmt.Fprintf(&b, "%s  %s%s  %s  %s\n", at, typ, seq, what, to)
	fmt.Fprintf(&b, "        [%s; %s]\n", svc, deadline)
	b.WriteString(d.text(string(typ)+" "+string(r.Kind), r.Message.IT))
	d.printf("%s", b.String())
}

func person(p events.Person) string {
	if p.Name == "" {
		return "<" + p.Email + ">"
	}
	return p.Name + " <" + p.Email + ">"
}

// wrap breaks each line of text into lines of at most width bytes, each
// prefixed; blank lines are kept.
func wrap(text string, width int, prefix string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.TrimSpace(para) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(wrapLine(para, width, prefix))
	}
	return b.String()
}

func wrapLine(text string, width int, prefix string) string {
	var b strings.Builder
	line := prefix
	for _, w := range strings.Fields(text) {
		if len(line) > len(prefix) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = prefix
		}
		if len(line) > len(prefix) {
			line += " "
		}
		line += w
	}
	if len(line) > len(prefix) {
		b.WriteString(line + "\n")
	}
	return b.String()
}

func indent(text, prefix string) string {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
