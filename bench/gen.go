package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
)

// Source is the CloudEvents source of the benchmark's inputs.
const Source = "bench://anac-portal"

// Input is one input message.
type Input struct {
	Subject string
	// MsgID is the Nats-Msg-Id header.
	MsgID string
	// ID is the CloudEvents id (the source is Source).
	ID   string
	Body []byte
	// Expect lists the outputs promemoria must emit because of this input
	// (with every service up).
	Expect []Output
	// Dup marks a late duplicate: the same event (same source, id and
	// content) sent again after the input stream's duplicate window, so the
	// stream stores it and the worker's own deduplication must drop it.
	Dup bool
}

// Output names one message promemoria must put on its output stream.
type Output struct {
	Type               events.Type
	TenderID, LotID    string
	OperatorFiscalCode string
}

// Key identifies the output: the first reminder of a gap (sequence 1) or
// its resolution.
func (o Output) Key() string {
	return string(o.Type) + "|" + o.TenderID + "|" + o.LotID + "|" + o.OperatorFiscalCode
}

// Mix describes the steady stream.
type Mix struct {
	// LotsMin and LotsMax bound the lots of a tender.
	LotsMin, LotsMax int
	// MissingCIG is the share of lots published without a CIG ("in fase
	// di acquisizione"); SmartCIG and SIMOG the shares of those whose CIG
	// comes from smartcig and simog (the rest: pcp, the default).
	MissingCIG, SmartCIG, SIMOG float64
	// BidsMax bounds the bids admitted with reserve per tender (0..BidsMax).
	BidsMax int
	// RegulariseBy is the share of bids that carry a regularise_by term.
	RegulariseBy float64
	// Paid is the share of bids whose contribution is then paid; Assigned
	// the share of missing CIGs then assigned; Cancelled the share of
	// tenders then cancelled.
	Paid, Assigned, Cancelled float64
	// Duplicates is the share of events sent twice (late duplicates).
	Duplicates float64
	// Active is how many tenders are in flight at once: their events
	// interleave in the stream.
	Active int
}

// DefaultMix is the steady stream of the benchmark.
func DefaultMix() Mix {
	return Mix{
		LotsMin: 1, LotsMax: 5, MissingCIG: 0.25, SmartCIG: 0.2, SIMOG: 0.1,
		BidsMax: 2, RegulariseBy: 0.5, Paid: 0.5, Assigned: 0.6, Cancelled: 0.02,
		Duplicates: 0.03, Active: 256,
	}
}

// Stream generates a steady stream of inputs: tenders with 1–5 lots, some
// published without CIG, bids admitted with reserve, payments, CIG
// assignments with valid CIGs, cancellations and late duplicates. The
// events of one tender come in their natural order (published, admitted,
// then payments and assignments, then a cancellation); the tenders
// interleave. The same seed and base give the same bytes.
type Stream struct {
	mix   Mix
	rng   *rand.Rand
	base  time.Time
	step  time.Duration
	n     int // events emitted, duplicates included
	ids   int // distinct events emitted
	next  int // next tender number
	cigs  uint32
	live  []*script
	dups  []dup
	Stats StreamStats
}

// StreamStats counts what a Stream emitted.
type StreamStats struct {
	Events, Unique, Duplicates int
	ByType                     map[events.Type]int
	// Expected counts the outputs expected, by type.
	Expected map[events.Type]int
}

type dup struct {
	due int
	in  Input
}

type lot struct {
	id, service string
	base        int64
	missing     bool
	open        bool
	// hasCIG is true once the lot has a CIG: at publication or assigned.
	hasCIG bool
}

// exempt reports whether bidders owe no contribution for the lot (below
// €150,000 in both default schedules).
func (l *lot) exempt() bool { return l.base < 150_000_00 }

type bid struct {
	lot          int
	op           events.Operator
	regulariseBy time.Time
	// open is true while the bid's gap is open; reminded once its first
	// reminder is expected (the lot has a CIG and is not exempt).
	open, reminded bool
}

type stepKind int

const (
	stPublished stepKind = iota
	stAdmitted
	stPaid
	stAssigned
	stCancelled
)

type step struct {
	kind stepKind
	i    int // lot or bid index
}

type script struct {
	id    string
	title string
	auth  events.Authority
	rup   events.Person
	lots  []lot
	bids  []bid
	steps []step
	pos   int
}

// NewStream returns a generator. Event i carries the time base + i×step.
func NewStream(seed uint64, base time.Time, step time.Duration, mix Mix) *Stream {
	s := &Stream{mix: mix, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), base: base.UTC(), step: step}
	s.Stats.ByType = map[events.Type]int{}
	s.Stats.Expected = map[events.Type]int{}
	for range max(mix.Active, 1) {
		s.live = append(s.live, s.newScript())
	}
	return s
}

func (s *Stream) newScript() *script {
	s.next++
	k := s.next
	sc := &script{
		id:    fmt.Sprintf("G%07d", k),
		title: fmt.Sprintf("Procedura aperta n. %d per lavori di manutenzione straordinaria", k),
		auth:  events.Authority{FiscalCode: fmt.Sprintf("8%010d", k%10_000_000), Name: fmt.Sprintf("Comune di Esempio %d", k%8000)},
		rup:   events.Person{Name: fmt.Sprintf("RUP %d", k), Email: fmt.Sprintf("rup%d@comune%d.example.it", k, k%8000)},
	}
	nl := s.mix.LotsMin + s.rng.IntN(s.mix.LotsMax-s.mix.LotsMin+1)
	for i := range nl {
		l := lot{id: fmt.Sprintf("L%d", i+1), base: 5_000_000 + s.rng.Int64N(295_000_000)} // €50,000–€3,000,000
		if s.rng.Float64() < s.mix.MissingCIG {
			l.missing = true
			switch r := s.rng.Float64(); {
			case r < s.mix.SmartCIG:
				l.service = "smartcig"
			case r < s.mix.SmartCIG+s.mix.SIMOG:
				l.service = "simog"
			}
		}
		sc.lots = append(sc.lots, l)
	}
	nb := s.rng.IntN(s.mix.BidsMax + 1)
	for i := range nb {
		b := bid{lot: s.rng.IntN(nl), op: events.Operator{
			FiscalCode: fmt.Sprintf("0%010d", (k*7+i)%10_000_000_000),
			Name:       fmt.Sprintf("Impresa %d-%d srl", k, i),
			Email:      fmt.Sprintf("impresa%d-%d@pec.example.it", k, i),
		}}
		if s.rng.Float64() < s.mix.RegulariseBy {
			b.regulariseBy = s.base.Add(20 * 24 * time.Hour)
		}
		sc.bids = append(sc.bids, b)
	}
	sc.steps = append(sc.steps, step{kind: stPublished})
	for i := range sc.bids {
		sc.steps = append(sc.steps, step{kind: stAdmitted, i: i})
	}
	var later []step
	for i := range sc.bids {
		if s.rng.Float64() < s.mix.Paid {
			later = append(later, step{kind: stPaid, i: i})
		}
	}
	for i, l := range sc.lots {
		if l.missing && s.rng.Float64() < s.mix.Assigned {
			later = append(later, step{kind: stAssigned, i: i})
		}
	}
	s.rng.Shuffle(len(later), func(i, j int) { later[i], later[j] = later[j], later[i] })
	sc.steps = append(sc.steps, later...)
	if s.rng.Float64() < s.mix.Cancelled {
		sc.steps = append(sc.steps, step{kind: stCancelled})
	}
	return sc
}

// Next returns the next input.
func (s *Stream) Next() Input {
	for i, d := range s.dups {
		if d.due <= s.n {
			s.dups = append(s.dups[:i], s.dups[i+1:]...)
			s.count(d.in)
			return d.in
		}
	}
	k := s.rng.IntN(len(s.live))
	sc := s.live[k]
	in := s.emit(sc)
	if sc.pos == len(sc.steps) {
		s.live[k] = s.newScript()
	}
	if s.rng.Float64() < s.mix.Duplicates {
		d := in
		d.Dup, d.Expect, d.MsgID = true, nil, in.MsgID+".resent"
		s.dups = append(s.dups, dup{due: s.n + 50 + s.rng.IntN(500), in: d})
	}
	s.count(in)
	return in
}

func (s *Stream) count(in Input) {
	s.n++
	s.Stats.Events++
	if in.Dup {
		s.Stats.Duplicates++
	} else {
		s.Stats.Unique++
	}
	s.Stats.ByType[Subjects.TypeOf(in.Subject)]++
	for _, o := range in.Expect {
		s.Stats.Expected[o.Type]++
	}
}

func (s *Stream) emit(sc *script) Input {
	st := sc.steps[sc.pos]
	sc.pos++
	var (
		typ    events.Type
		data   any
		expect []Output
	)
	at := s.base.Add(time.Duration(s.n) * s.step)
	switch st.kind {
	case stPublished:
		typ = events.TypeTenderPublished
		p := events.TenderPublished{
			TenderID: sc.id, Title: sc.title, Authority: sc.auth, RUP: sc.rup,
			PublishedAt: at, OfferDeadline: s.base.Add(30 * 24 * time.Hour),
		}
		for i := range sc.lots {
			l := &sc.lots[i]
			pl := events.Lot{LotID: l.id, CIGService: l.service, BaseAmountCents: l.base}
			if l.missing {
				l.open = true
				expect = append(expect, Output{Type: events.TypeReminderCIG, TenderID: sc.id, LotID: l.id})
			} else {
				pl.CIG = s.cig("pcp")
				l.hasCIG = true
			}
			p.Lots = append(p.Lots, pl)
		}
		data = p
	case stAdmitted:
		typ = events.TypeAdmittedWithReserve
		b := &sc.bids[st.i]
		l := &sc.lots[b.lot]
		data = events.AdmittedWithReserve{TenderID: sc.id, LotID: l.id, Operator: b.op, RegulariseBy: b.regulariseBy}
		// A bid on an exempt lot opens no gap; one on a lot without a CIG
		// is reminded when the CIG arrives.
		b.open = !l.exempt()
		if b.open && l.hasCIG {
			b.reminded = true
			expect = append(expect, Output{Type: events.TypeReminderContribution, TenderID: sc.id, LotID: l.id, OperatorFiscalCode: b.op.FiscalCode})
		}
	case stPaid:
		typ = events.TypeContributionPaid
		b := &sc.bids[st.i]
		data = events.ContributionPaid{TenderID: sc.id, LotID: sc.lots[b.lot].id, OperatorFiscalCode: b.op.FiscalCode, Receipt: fmt.Sprintf("IUV%015d", s.n)}
		if b.open && b.reminded {
			expect = append(expect, Output{Type: events.TypeReminderResolved, TenderID: sc.id, LotID: sc.lots[b.lot].id, OperatorFiscalCode: b.op.FiscalCode})
		}
		b.open = false
	case stAssigned:
		typ = events.TypeCIGAssigned
		l := &sc.lots[st.i]
		data = events.CIGAssigned{TenderID: sc.id, LotID: l.id, CIG: s.cig(l.service)}
		l.hasCIG = true
		if l.open {
			l.open = false
			expect = append(expect, Output{Type: events.TypeReminderResolved, TenderID: sc.id, LotID: l.id})
		}
		for i := range sc.bids {
			if b := &sc.bids[i]; b.open && !b.reminded && b.lot == st.i {
				b.reminded = true
				expect = append(expect, Output{Type: events.TypeReminderContribution, TenderID: sc.id, LotID: l.id, OperatorFiscalCode: b.op.FiscalCode})
			}
		}
	case stCancelled:
		typ = events.TypeTenderCancelled
		data = events.TenderCancelled{TenderID: sc.id, Reason: "annullata in autotutela"}
		for i := range sc.lots {
			if l := &sc.lots[i]; l.open {
				l.open = false
				expect = append(expect, Output{Type: events.TypeReminderResolved, TenderID: sc.id, LotID: l.id})
			}
		}
		for i := range sc.bids {
			if b := &sc.bids[i]; b.open {
				b.open = false
				if b.reminded {
					expect = append(expect, Output{Type: events.TypeReminderResolved, TenderID: sc.id, LotID: sc.lots[b.lot].id, OperatorFiscalCode: b.op.FiscalCode})
				}
			}
		}
	}
	s.ids++
	id := fmt.Sprintf("ev-%d", s.ids)
	return Input{Subject: Subjects.Of(typ), MsgID: id, ID: id, Body: envelope(typ, id, at, data), Expect: expect}
}

// cig returns a new valid CIG of the family the service issues.
func (s *Stream) cig(service string) string {
	s.cigs++
	n := s.cigs%0xFFFFF + 1
	var (
		code string
		err  error
	)
	switch service {
	case "smartcig":
		code, err = cig.GenerateSmart("XYZ"[n%3], n)
	case "simog":
		code, err = cig.GenerateSIMOGv1(n % 9_999_999)
	default:
		code, err = cig.GenerateSIMOGv2(byte('A'+n%21), n)
	}
	if err != nil {
		panic(err) // n is always in range
	}
	return code
}

func envelope(typ events.Type, id string, at time.Time, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	body, err := json.Marshal(events.Envelope{
		SpecVersion: events.SpecVersion, ID: id, Source: Source, Type: typ, Time: at.UTC(),
		DataContentType: events.ContentType, Data: raw,
	})
	if err != nil {
		panic(err)
	}
	return body
}

// Portal returns a portal.down or portal.up input for services (none: all)
// at the given time.
func Portal(up bool, id string, at time.Time, services ...string) Input {
	typ := events.TypePortalDown
	if up {
		typ = events.TypePortalUp
	}
	return Input{
		Subject: Subjects.Of(typ), MsgID: id, ID: id,
		Body: envelope(typ, id, at, events.PortalChange{Services: services, At: at.UTC(), Notice: "https://www.anticorruzione.it/-/avviso"}),
	}
}

// Outage generates the inputs that leave n open gaps while every service
// is down: tenders published during the outage, LotsPerTender lots without
// CIG (five wait for pcp, the rest for smartcig), and BidsPerTender bids
// admitted with reserve on one more lot, published with its CIG (they wait
// for payments: a bidder can pay only for a lot with a CIG). Each tender
// opens LotsPerTender+BidsPerTender gaps; the last one fewer.
type Outage struct {
	N                            int
	LotsPerTender, BidsPerTender int
	base                         time.Time
	gaps, tenders, ids           int
	queue                        []Input
	// CIG and Contribution count the gaps of each kind emitted so far.
	CIG, Contribution int
}

// NewOutage returns the generator of n gaps; event times start at base.
func NewOutage(n int, base time.Time) *Outage {
	return &Outage{N: n, LotsPerTender: 8, BidsPerTender: 2, base: base.UTC()}
}

// Tenders returns how many tenders were generated so far.
func (o *Outage) Tenders() int { return o.tenders }

// Next returns the next input, or false once n gaps have been opened.
func (o *Outage) Next() (Input, bool) {
	if len(o.queue) == 0 {
		if o.gaps >= o.N {
			return Input{}, false
		}
		o.tender()
	}
	in := o.queue[0]
	o.queue = o.queue[1:]
	return in, true
}

func (o *Outage) tender() {
	o.tenders++
	k := o.tenders
	id := fmt.Sprintf("D%07d", k)
	rup := events.Person{Name: fmt.Sprintf("RUP %d", k), Email: fmt.Sprintf("rup%d@ente%d.example.it", k, k%5000)}
	at := func() time.Time { o.ids++; return o.base.Add(time.Duration(o.ids) * time.Microsecond) }
	nl := min(o.LotsPerTender, o.N-o.gaps)
	p := events.TenderPublished{
		TenderID: id, Title: fmt.Sprintf("Gara %d pubblicata durante il disservizio, CIG in fase di acquisizione", k),
		Authority: events.Authority{FiscalCode: fmt.Sprintf("9%010d", k%10_000_000), Name: fmt.Sprintf("Ente %d", k%5000)},
		RUP:       rup, OfferDeadline: o.base.Add(30 * 24 * time.Hour),
	}
	for i := range nl {
		l := events.Lot{LotID: fmt.Sprintf("L%d", i+1), BaseAmountCents: int64(20_000_000 + 1_000_000*i)}
		if i >= 5 {
			l.CIGService = "smartcig"
		}
		p.Lots = append(p.Lots, l)
	}
	nb := min(o.BidsPerTender, o.N-o.gaps-nl)
	if nb > 0 {
		code, _ := cig.GenerateSIMOGv2('B', uint32(k%0xFFFFFF))
		p.Lots = append(p.Lots, events.Lot{LotID: "LC", CIG: code, BaseAmountCents: 30_000_000})
	}
	t := at()
	p.PublishedAt = t
	evID := fmt.Sprintf("out-%d", o.ids)
	o.queue = append(o.queue, Input{Subject: Subjects.Of(events.TypeTenderPublished), MsgID: evID, ID: evID, Body: envelope(events.TypeTenderPublished, evID, t, p)})
	o.gaps += nl
	o.CIG += nl
	for i := range nb {
		t := at()
		evID := fmt.Sprintf("out-%d", o.ids)
		op := events.Operator{FiscalCode: fmt.Sprintf("1%010d", (k*3+i)%10_000_000_000), Name: fmt.Sprintf("Operatore %d-%d", k, i), Email: fmt.Sprintf("op%d-%d@pec.example.it", k, i)}
		a := events.AdmittedWithReserve{TenderID: id, LotID: "LC", Operator: op}
		o.queue = append(o.queue, Input{Subject: Subjects.Of(events.TypeAdmittedWithReserve), MsgID: evID, ID: evID, Body: envelope(events.TypeAdmittedWithReserve, evID, t, a)})
	}
	o.gaps += nb
	o.Contribution += nb
}
