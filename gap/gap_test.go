package gap

import (
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

func TestTokenExamples(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "pcp", "pcp"},
		{"plain mixed", "Lotto_1-A", "Lotto_1-A"},
		{"dot", "a.b", "a=2Eb"},
		{"equals", "a=b", "a=3Db"},
		{"escaped look-alike", "=2E", "=3D2E"},
		{"space", "lotto 1", "lotto=201"},
		{"slash", "2021/123", "2021=2F123"},
		{"wildcards", "*>", "=2A=3E"},
		{"unicode", "è", "=C3=A8"},
		{"nul", "\x00", "=00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Token(tt.in)
			if got != tt.want {
				t.Errorf("Token(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if back := Untoken(got); back != tt.in {
				t.Errorf("Untoken(%q) = %q, want %q", got, back, tt.in)
			}
		})
	}
}

// randomString draws from an alphabet rich in the bytes Token must escape.
func randomString(r *rand.Rand) string {
	alphabet := []string{"a", "Z", "0", "9", "-", "_", ".", "=", " ", "*", ">", "/", "è", "€", "日", "\x00", "\xff", "=2E", "=00", "\t"}
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	if r.IntN(8) == 0 {
		// Arbitrary bytes too, valid UTF-8 or not.
		raw := make([]byte, r.IntN(6))
		for i := range raw {
			raw[i] = byte(r.IntN(256))
		}
		b.Write(raw)
	}
	return b.String()
}

func TestTokenRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(2021, 5))
	seen := map[string]string{}
	for i := range 20000 {
		s := randomString(r)
		if s == "" {
			continue // covered (and currently skipped) by TestTokenEmpty
		}
		tok := Token(s)
		if !tokenRe.MatchString(tok) {
			t.Fatalf("#%d: Token(%q) = %q: not a single NATS token of [A-Za-z0-9_=-]", i, s, tok)
		}
		if back := Untoken(tok); back != s {
			t.Fatalf("#%d: Untoken(Token(%q)) = %q", i, s, back)
		}
		if prev, ok := seen[tok]; ok && prev != s {
			t.Fatalf("Token(%q) = Token(%q) = %q: not injective", prev, s, tok)
		}
		seen[tok] = s
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d distinct inputs tried", len(seen))
	}
}

func TestTokenEmpty(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		if got := Untoken(Token("")); got != "" {
			t.Errorf("Untoken(Token(\"\")) = %q, want \"\"", got)
		}
	})
	t.Run("injective with NUL", func(t *testing.T) {
		if a, b := Token(""), Token("\x00"); a == b {
			t.Errorf("Token(\"\") = Token(\"\\x00\") = %q", a)
		}
	})
	t.Run("non-empty token", func(t *testing.T) {
		if got := Token(""); got == "" || !tokenRe.MatchString(got) {
			t.Errorf("Token(\"\") = %q, want a non-empty token", got)
		}
	})
}

func TestUntokenLeavesPlainAndMalformed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pcp", "pcp"},
		{"a=2Eb", "a.b"},
		{"a=2eb", "a.b"},
		{"=", ""}, // the token of the empty string
		{"=4", "=4"},
		{"=ZZ", "=ZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Untoken(tt.in); got != tt.want {
				t.Errorf("Untoken(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name    string
		service string
		id      Identity
		want    string
	}{
		{"cig", "smartcig", Identity{Kind: events.KindCIG, TenderID: "T-2021-1", LotID: "1"}, "gap.smartcig.cig.T-2021-1.1"},
		{"contribution", "payments", Identity{Kind: events.KindContribution, TenderID: "T1", LotID: "L2", OperatorFiscalCode: "IT01234567890"}, "gap.payments.contribution.T1.L2.IT01234567890"},
		{"escaped ids", "pcp", Identity{Kind: events.KindCIG, TenderID: "2021/7.a", LotID: "lotto 1"}, "gap.pcp.cig.2021=2F7=2Ea.lotto=201"},
		{"escaped operator", "payments", Identity{Kind: events.KindContribution, TenderID: "T", LotID: "L", OperatorFiscalCode: "a.b"}, "gap.payments.contribution.T.L.a=2Eb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Key(tt.service, tt.id)
			if got != tt.want {
				t.Fatalf("Key = %q, want %q", got, tt.want)
			}
			parts := strings.Split(got, ".")
			if !strings.HasPrefix(got, strings.TrimSuffix(ServicePrefix(tt.service), ">")) {
				t.Errorf("Key %q does not match ServicePrefix %q", got, ServicePrefix(tt.service))
			}
			wantParts := 5
			if tt.id.OperatorFiscalCode != "" {
				wantParts = 6
			}
			if len(parts) != wantParts {
				t.Errorf("Key %q has %d tokens, want %d", got, len(parts), wantParts)
			}
			if Untoken(parts[3]) != tt.id.TenderID || Untoken(parts[4]) != tt.id.LotID {
				t.Errorf("Key %q does not decode to tender %q lot %q", got, tt.id.TenderID, tt.id.LotID)
			}
		})
	}
	t.Run("dot in id does not collide", func(t *testing.T) {
		a := Key("pcp", Identity{Kind: events.KindCIG, TenderID: "a.b", LotID: "c"})
		b := Key("pcp", Identity{Kind: events.KindCIG, TenderID: "a", LotID: "b.c"})
		if a == b {
			t.Errorf("distinct identities share key %q", a)
		}
	})
	if got := ServicePrefix("smart.cig"); got != "gap.smart=2Ecig.>" {
		t.Errorf("ServicePrefix = %q", got)
	}
}

func TestReminderID(t *testing.T) {
	base := Identity{Kind: events.KindContribution, TenderID: "T1", LotID: "L1", OperatorFiscalCode: "IT1"}
	id := ReminderID(base, events.TypeReminderContribution, 1)
	if !regexp.MustCompile(`^rem-[a-z2-7]{24}$`).MatchString(id) {
		t.Fatalf("ReminderID = %q, want rem- and 24 base32 characters", id)
	}
	if again := ReminderID(base, events.TypeReminderContribution, 1); again != id {
		t.Fatalf("ReminderID not deterministic: %q then %q", id, again)
	}
	tests := []struct {
		name string
		id   Identity
		typ  events.Type
		seq  int
	}{
		{"kind", Identity{Kind: events.KindCIG, TenderID: "T1", LotID: "L1", OperatorFiscalCode: "IT1"}, events.TypeReminderContribution, 1},
		{"tender", Identity{Kind: events.KindContribution, TenderID: "T2", LotID: "L1", OperatorFiscalCode: "IT1"}, events.TypeReminderContribution, 1},
		{"lot", Identity{Kind: events.KindContribution, TenderID: "T1", LotID: "L2", OperatorFiscalCode: "IT1"}, events.TypeReminderContribution, 1},
		{"operator", Identity{Kind: events.KindContribution, TenderID: "T1", LotID: "L1", OperatorFiscalCode: "IT2"}, events.TypeReminderContribution, 1},
		{"no operator", Identity{Kind: events.KindContribution, TenderID: "T1", LotID: "L1"}, events.TypeReminderContribution, 1},
		{"type escalation", base, events.TypeReminderEscalation, 1},
		{"type resolved", base, events.TypeReminderResolved, 1},
		{"sequence 2", base, events.TypeReminderContribution, 2},
		{"sequence 256", base, events.TypeReminderContribution, 256},
		{"sequence 0", base, events.TypeReminderContribution, 0},
		{"shifted boundary", Identity{Kind: events.KindContribution, TenderID: "T1L", LotID: "1", OperatorFiscalCode: "IT1"}, events.TypeReminderContribution, 1},
	}
	seen := map[string]string{id: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReminderID(tt.id, tt.typ, tt.seq)
			if prev, ok := seen[got]; ok {
				t.Errorf("ReminderID = %q, same as %s", got, prev)
			}
			seen[got] = tt.name
		})
	}
}

func TestIdentityRecipientCC(t *testing.T) {
	rup := events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"}
	op := &events.Operator{FiscalCode: "IT01234567890", Name: "Edil Srl", Email: "edil@pec.example.it"}
	tests := []struct {
		name      string
		g         Gap
		recipient events.Person
		cc        []events.Person
		id        Identity
	}{
		{
			name:      "cig goes to the RUP",
			g:         Gap{Kind: events.KindCIG, TenderID: "T", LotID: "1", RUP: rup},
			recipient: rup,
			id:        Identity{Kind: events.KindCIG, TenderID: "T", LotID: "1"},
		},
		{
			name:      "contribution goes to the operator, RUP in copy",
			g:         Gap{Kind: events.KindContribution, TenderID: "T", LotID: "1", RUP: rup, Operator: op},
			recipient: events.Person{Name: op.Name, Email: op.Email},
			cc:        []events.Person{rup},
			id:        Identity{Kind: events.KindContribution, TenderID: "T", LotID: "1", OperatorFiscalCode: op.FiscalCode},
		},
		{
			name:      "contribution without RUP e-mail has no copy",
			g:         Gap{Kind: events.KindContribution, TenderID: "T", LotID: "1", Operator: op},
			recipient: events.Person{Name: op.Name, Email: op.Email},
			id:        Identity{Kind: events.KindContribution, TenderID: "T", LotID: "1", OperatorFiscalCode: op.FiscalCode},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.g.Recipient(); got != tt.recipient {
				t.Errorf("Recipient = %v, want %v", got, tt.recipient)
			}
			if got := tt.g.CC(); !reflect.DeepEqual(got, tt.cc) {
				t.Errorf("CC = %v, want %v", got, tt.cc)
			}
			if got := tt.g.Identity(); got != tt.id {
				t.Errorf("Identity = %+v, want %+v", got, tt.id)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t0 := time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	oldRUP := events.Person{Name: "Old", Email: "old@example.it"}
	newRUP := events.Person{Name: "New", Email: "new@example.it"}
	stored := func() *Gap {
		return &Gap{
			Key: "gap.pcp.cig.T.1", Kind: events.KindCIG, Service: "pcp", TenderID: "T", LotID: "1",
			Title: "old title", RUP: oldRUP, Deadline: t0.Add(72 * time.Hour), Open: true,
			Sequence: 2, LastRemindedAt: t0, WakeAt: t0.Add(24 * time.Hour), Escalated: true, EscalatedAt: t0,
			TenderRevision: 5,
		}
	}
	resolution := &events.Resolution{By: events.TypeCIGAssigned, At: t0, CIG: "B00012EADB"}
	spec := func(open bool) *Gap {
		g := &Gap{Title: "new title", RUP: newRUP, Deadline: t0.Add(96 * time.Hour), ContributionCents: 1800, Open: open}
		if !open {
			g.Resolution = resolution
		}
		return g
	}
	tests := []struct {
		name      string
		spec      *Gap
		rev       uint64
		wantTitle string
		wantRUP   events.Person
		wantRev   uint64
		wantOpen  bool
		wantRes   *events.Resolution
		prepare   func(g *Gap)
	}{
		{name: "newer revision overwrites", spec: spec(true), rev: 6, wantTitle: "new title", wantRUP: newRUP, wantRev: 6, wantOpen: true},
		{name: "same revision overwrites", spec: spec(true), rev: 5, wantTitle: "new title", wantRUP: newRUP, wantRev: 5, wantOpen: true},
		{name: "older revision does not", spec: spec(true), rev: 4, wantTitle: "old title", wantRUP: oldRUP, wantRev: 5, wantOpen: true},
		{name: "older revision still closes", spec: spec(false), rev: 4, wantTitle: "old title", wantRUP: oldRUP, wantRev: 5, wantOpen: false, wantRes: resolution},
		{name: "newer revision closes", spec: spec(false), rev: 7, wantTitle: "new title", wantRUP: newRUP, wantRev: 7, wantOpen: false, wantRes: resolution},
		{
			name: "resolved never reopens", spec: spec(true), rev: 9, wantTitle: "new title", wantRUP: newRUP, wantRev: 9, wantOpen: false,
			wantRes: &events.Resolution{By: events.TypeTenderCancelled, At: t0},
			prepare: func(g *Gap) { g.Open, g.Resolution = false, &events.Resolution{By: events.TypeTenderCancelled, At: t0} },
		},
		{
			name: "first resolution is kept", spec: spec(false), rev: 9, wantTitle: "new title", wantRUP: newRUP, wantRev: 9, wantOpen: false,
			wantRes: &events.Resolution{By: events.TypeTenderCancelled, At: t0},
			prepare: func(g *Gap) { g.Open, g.Resolution = false, &events.Resolution{By: events.TypeTenderCancelled, At: t0} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := stored()
			if tt.prepare != nil {
				tt.prepare(g)
			}
			g.Merge(tt.spec, tt.rev)
			if g.Title != tt.wantTitle || g.RUP != tt.wantRUP || g.TenderRevision != tt.wantRev {
				t.Errorf("title %q rup %v rev %d; want %q %v %d", g.Title, g.RUP, g.TenderRevision, tt.wantTitle, tt.wantRUP, tt.wantRev)
			}
			if tt.wantTitle == "new title" && (!g.Deadline.Equal(t0.Add(96*time.Hour)) || g.ContributionCents != 1800) {
				t.Errorf("deadline %v cents %d not taken from the newer spec", g.Deadline, g.ContributionCents)
			}
			if tt.wantTitle == "old title" && (!g.Deadline.Equal(t0.Add(72*time.Hour)) || g.ContributionCents != 0) {
				t.Errorf("deadline %v cents %d overwritten by an older spec", g.Deadline, g.ContributionCents)
			}
			if g.Open != tt.wantOpen || !reflect.DeepEqual(g.Resolution, tt.wantRes) {
				t.Errorf("open %v resolution %+v; want %v %+v", g.Open, g.Resolution, tt.wantOpen, tt.wantRes)
			}
			// Progress is never touched by Merge.
			if g.Sequence != 2 || !g.LastRemindedAt.Equal(t0) || !g.Escalated || !g.WakeAt.Equal(t0.Add(24*time.Hour)) || g.Key != "gap.pcp.cig.T.1" {
				t.Errorf("progress changed: %+v", g)
			}
		})
	}
}

func TestMergeDescriptiveFields(t *testing.T) {
	t0 := time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	op := &events.Operator{FiscalCode: "IT01234567890", Name: "Edil Srl", Email: "edil@pec.example.it"}
	// The stored gap was derived before the tender was known.
	stored := func() *Gap {
		return &Gap{Kind: events.KindContribution, Service: "payments", TenderID: "T", LotID: "1", Operator: op,
			Open: true, Sequence: 1, LastRemindedAt: t0, TenderRevision: 5}
	}
	spec := &Gap{
		Authority: events.Authority{FiscalCode: "80000000000", Name: "Comune"}, PublishedAt: t0, CIG: "B00012EADB", Operator: op,
		ContributionCents: 3500, ContributionKnown: true, ContributionTable: "anac-2021", Open: true,
	}
	tests := []struct {
		name string
		rev  uint64
		want bool // the spec's fields are taken
	}{
		{"newer revision", 6, true},
		{"same revision", 5, true},
		{"older revision", 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := stored()
			g.Merge(spec, tt.rev)
			got := Gap{Authority: g.Authority, PublishedAt: g.PublishedAt, CIG: g.CIG, Operator: g.Operator,
				ContributionCents: g.ContributionCents, ContributionKnown: g.ContributionKnown, ContributionTable: g.ContributionTable, Open: g.Open}
			want := Gap{Operator: op, Open: true}
			if tt.want {
				want = *spec
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("merged %+v\nwant %+v", got, want)
			}
			if g.Exempt || g.Sequence != 1 || !g.LastRemindedAt.Equal(t0) {
				t.Errorf("progress or exemption changed: %+v", g)
			}
		})
	}
}

func TestMergeExempt(t *testing.T) {
	t0 := time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	exemptRes := &events.Resolution{By: events.TypeTenderPublished, At: t0, Reason: "exempt"}
	paidRes := &events.Resolution{By: events.TypeContributionPaid, At: t0, Receipt: "IUV-1"}
	tests := []struct {
		name       string
		prepare    func(g *Gap)
		spec       Gap
		wantExempt bool
		wantRes    *events.Resolution
	}{
		{name: "open, nothing sent, turns out exempt", spec: Gap{Exempt: true, Resolution: exemptRes},
			wantExempt: true, wantRes: exemptRes},
		{name: "open, reminded once: closed but not exempt", prepare: func(g *Gap) { g.Sequence, g.LastRemindedAt = 1, t0 },
			spec: Gap{Exempt: true, Resolution: exemptRes}, wantRes: exemptRes},
		{name: "open, escalated: closed but not exempt", prepare: func(g *Gap) { g.Escalated, g.EscalatedAt = true, t0 },
			spec: Gap{Exempt: true, Resolution: exemptRes}, wantRes: exemptRes},
		{name: "open, closed by a payment: not exempt", spec: Gap{Resolution: paidRes}, wantRes: paidRes},
		{name: "already closed: stays as it was", prepare: func(g *Gap) { g.Open, g.Resolution = false, paidRes },
			spec: Gap{Exempt: true, Resolution: exemptRes}, wantRes: paidRes},
		{name: "open spec: never exempt", spec: Gap{Open: true, Exempt: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gap{Kind: events.KindContribution, Service: "payments", TenderID: "T", LotID: "1", Open: true, TenderRevision: 1}
			if tt.prepare != nil {
				tt.prepare(g)
			}
			spec := tt.spec
			g.Merge(&spec, 2)
			if g.Exempt != tt.wantExempt || !reflect.DeepEqual(g.Resolution, tt.wantRes) || g.Open != (tt.wantRes == nil) {
				t.Errorf("exempt %v open %v resolution %+v; want exempt %v resolution %+v", g.Exempt, g.Open, g.Resolution, tt.wantExempt, tt.wantRes)
			}
			// An exempt gap sends nothing, not even a resolved notice.
			if g.Exempt {
				if d := Plan(g, nil, t0, policy); len(d.Actions) != 0 || !d.WakeAt.IsZero() {
					t.Errorf("Plan on an exempt gap = %+v, want nothing", d)
				}
			}
		})
	}
}

// TestMergeExemptReopens checks that a gap closed as exempt opens again when
// a newer publication puts its lot above the threshold, and that a stale
// derivation neither closes nor reopens it.
func TestMergeExemptReopens(t *testing.T) {
	exempt := Gap{Kind: events.KindContribution, Open: false, Exempt: true,
		Resolution: &events.Resolution{By: events.TypeTenderPublished, Reason: "exempt"}}
	owes := Gap{Kind: events.KindContribution, Open: true, ContributionCents: 3500, ContributionKnown: true}

	g := Gap{Kind: events.KindContribution, Open: true}
	g.Merge(&exempt, 3)
	if g.Open || !g.Exempt {
		t.Fatalf("after an exempt derivation: open %v exempt %v, want closed and exempt", g.Open, g.Exempt)
	}
	g.Merge(&owes, 2) // stale
	if g.Open {
		t.Errorf("a stale derivation reopened the exempt gap")
	}
	g.Merge(&owes, 4)
	if !g.Open || g.Exempt || g.Resolution != nil || g.ContributionCents != 3500 {
		t.Errorf("after a newer derivation that owes: %+v, want open, not exempt, 35 €", g)
	}
	g.Merge(&exempt, 3) // stale again
	if !g.Open {
		t.Errorf("a stale exempt derivation closed the gap")
	}
	paid := Gap{Kind: events.KindContribution, Open: false, Resolution: &events.Resolution{By: events.TypeContributionPaid}}
	g.Merge(&paid, 1)
	if g.Open || g.Exempt {
		t.Errorf("a payment, even from an older revision, must close: %+v", g)
	}
	g.Merge(&owes, 9)
	if g.Open {
		t.Errorf("a paid gap reopened")
	}
}

// TestParseKey checks that ParseKey reverses Key, escaped ids included.
func TestParseKey(t *testing.T) {
	for _, id := range []Identity{
		{Kind: events.KindCIG, TenderID: "T-1", LotID: "1"},
		{Kind: events.KindContribution, TenderID: "ASP/2021.0112 è", LotID: "lotto 2", OperatorFiscalCode: "RSSMRA70A01F205X"},
	} {
		got, ok := ParseKey(Key("pcp", id))
		if !ok || got != id {
			t.Errorf("ParseKey(Key(%+v)) = %+v, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "svc.pcp", "gap.pcp.cig.T", "tender.x.y.z.w"} {
		if _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}
