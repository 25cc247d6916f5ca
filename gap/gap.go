// Package gap models what promemoria remembers: a lot published without its
// CIG, or a bid admitted "con riserva" whose contribution is unpaid. A Gap
// is a plain record stored in JetStream KV; Plan decides, from the gap, the
// state of the service it depends on and the time, what must be sent now and
// when to look again.
package gap

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
	"time"

	"github.com/promemoria/promemoria/events"
)

// Gap is one open or resolved gap.
type Gap struct {
	Key      string      `json:"key"`
	Kind     events.Kind `json:"kind"`
	Service  string      `json:"service"`
	TenderID string      `json:"tender_id"`
	Title    string      `json:"tender_title,omitempty"`
	// Authority is the contracting authority; PublishedAt is when the
	// tender was published (it chooses the contribution schedule and the
	// law that applies). Both are zero until the tender is known.
	Authority   events.Authority `json:"authority,omitzero"`
	PublishedAt time.Time        `json:"published_at,omitzero"`
	LotID       string           `json:"lot_id"`
	// CIG is the lot's CIG once it has a valid one. A contribution gap is
	// not reminded without it: the CIG identifies the payment.
	CIG string `json:"cig,omitempty"`
	// Operator is set for contribution gaps.
	Operator *events.Operator `json:"operator,omitempty"`
	RUP      events.Person    `json:"rup"`
	// Deadline is the lot's offer deadline (CIG) or the regularise_by term
	// (contribution); zero if unknown.
	Deadline time.Time `json:"deadline,omitzero"`
	// ContributionCents is what the operator owes, valid if
	// ContributionKnown; ContributionTable names the schedule used.
	ContributionCents int64     `json:"contribution_cents,omitempty"`
	ContributionKnown bool      `json:"contribution_known,omitempty"`
	ContributionTable string    `json:"contribution_table,omitempty"`
	OpenedAt          time.Time `json:"opened_at"`
	// Exempt is true for a bid on a lot below the contribution threshold:
	// the record is closed from the start and nothing is ever sent.
	Exempt bool `json:"exempt,omitempty"`

	Open       bool               `json:"open"`
	Resolution *events.Resolution `json:"resolution,omitempty"`

	// Sequence counts the reminders sent; LastRemindedAt is when the latest
	// one went out.
	Sequence       int       `json:"sequence"`
	LastRemindedAt time.Time `json:"last_reminded_at,omitzero"`
	Escalated      bool      `json:"escalated,omitempty"`
	EscalatedAt    time.Time `json:"escalated_at,omitzero"`
	// ResolvedSent is true once reminder.resolved has gone out.
	ResolvedSent bool `json:"resolved_sent,omitempty"`
	// WakeAt is the time the gap's durable timer is set for; zero if none.
	WakeAt    time.Time `json:"wake_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// TenderRevision is the revision of the tender record the descriptive
	// fields were taken from: an older derivation never overwrites a newer.
	TenderRevision uint64 `json:"tender_revision,omitempty"`
	// Pending lists the messages this record says were sent lately: they
	// are committed first and published after, so whoever handles the gap
	// next while the output stream still remembers their ids publishes
	// them again (same ids, so the stream keeps one), in case their first
	// publication was interrupted. They are dropped once older than that.
	Pending []Action `json:"pending,omitempty"`
}

// Merge folds a freshly derived description of the gap (spec, taken from
// tender revision rev) into the stored record g. Progress fields are kept;
// a resolved gap never reopens, except one closed as exempt when a newer
// publication puts its lot above the threshold.
func (g *Gap) Merge(spec *Gap, rev uint64) {
	newer := rev >= g.TenderRevision
	if newer {
		g.Title, g.RUP, g.Deadline = spec.Title, spec.RUP, spec.Deadline
		g.Authority, g.PublishedAt, g.CIG = spec.Authority, spec.PublishedAt, spec.CIG
		g.Operator = spec.Operator
		g.ContributionCents, g.ContributionKnown, g.ContributionTable = spec.ContributionCents, spec.ContributionKnown, spec.ContributionTable
		g.TenderRevision = rev
	}
	switch {
	case g.Open && !spec.Open && (!spec.Exempt || newer):
		// A payment or a cancellation closes whatever the revision; an
		// exemption only from the newest publication, which sets the amount.
		g.Open, g.Resolution = false, spec.Resolution
		// A gap opened before its tender was known can turn out exempt.
		g.Exempt = spec.Exempt && g.Sequence == 0 && !g.Escalated
	case g.Exempt && spec.Open && newer:
		// A newer publication put the lot above the threshold: the bid owes
		// after all. Nothing was ever sent about an exempt gap, so it can
		// open again; a gap closed by a payment or a cancellation cannot.
		g.Open, g.Exempt, g.Resolution = true, false, nil
	}
}

// NeedsCIG reports whether the gap cannot be reminded yet because its lot
// has no CIG: a bidder cannot pay the contribution of a lot without one.
func (g *Gap) NeedsCIG() bool { return g.Kind == events.KindContribution && g.CIG == "" }

// Recipient returns who a reminder of the gap goes to: the RUP for a CIG,
// the operator for a contribution.
func (g *Gap) Recipient() events.Person {
	if g.Kind == events.KindContribution && g.Operator != nil {
		return events.Person{Name: g.Operator.Name, Email: g.Operator.Email}
	}
	return g.RUP
}

// CC returns who is informed in copy: the RUP, for a contribution.
func (g *Gap) CC() []events.Person {
	if g.Kind == events.KindContribution && g.RUP.Email != "" {
		return []events.Person{g.RUP}
	}
	return nil
}

// OperatorFiscalCode returns the operator's fiscal code, or "".
func (g *Gap) OperatorFiscalCode() string {
	if g.Operator == nil {
		return ""
	}
	return g.Operator.FiscalCode
}

// Identity is what names a gap independently of where it is stored.
type Identity struct {
	Kind               events.Kind
	TenderID           string
	LotID              string
	OperatorFiscalCode string
}

// Identity returns the gap's identity.
func (g *Gap) Identity() Identity {
	return Identity{Kind: g.Kind, TenderID: g.TenderID, LotID: g.LotID, OperatorFiscalCode: g.OperatorFiscalCode()}
}

// Key returns the KV key of a gap of the given identity that depends on
// service: gap.<service>.<kind>.<tender>.<lot>[.<operator>], each id
// escaped with Token.
func Key(service string, id Identity) string {
	var b strings.Builder
	b.WriteString("gap.")
	b.WriteString(Token(service))
	b.WriteByte('.')
	b.WriteString(string(id.Kind))
	b.WriteByte('.')
	b.WriteString(Token(id.TenderID))
	b.WriteByte('.')
	b.WriteString(Token(id.LotID))
	if id.OperatorFiscalCode != "" {
		b.WriteByte('.')
		b.WriteString(Token(id.OperatorFiscalCode))
	}
	return b.String()
}

// ParseKey returns the identity named by a key Key built; ok is false for
// anything else.
func ParseKey(key string) (id Identity, ok bool) {
	parts := strings.Split(key, ".")
	if (len(parts) != 5 && len(parts) != 6) || parts[0] != "gap" {
		return Identity{}, false
	}
	id = Identity{Kind: events.Kind(parts[2]), TenderID: Untoken(parts[3]), LotID: Untoken(parts[4])}
	if len(parts) == 6 {
		id.OperatorFiscalCode = Untoken(parts[5])
	}
	return id, true
}

// ServicePrefix returns the key filter of every gap that depends on service.
func ServicePrefix(service string) string { return "gap." + Token(service) + ".>" }

// Token escapes s into one NATS subject token and KV key token: letters,
// digits, '-' and '_' stand for themselves; every other byte becomes =XX.
// The mapping is injective, so distinct ids never share a key.
func Token(s string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	if b.Len() == 0 {
		return "=" // the empty string: never produced otherwise
	}
	return b.String()
}

// Untoken reverses Token.
func Untoken(s string) string {
	if s == "=" {
		return ""
	}
	if !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// ReminderID returns the deterministic id of the message of type t with the
// given sequence about the gap: the same gap, type and sequence always give
// the same id, which is the CloudEvents id and the Nats-Msg-Id.
func ReminderID(id Identity, t events.Type, sequence int) string {
	h := sha256.New()
	for _, part := range []string{string(id.Kind), id.TenderID, id.LotID, id.OperatorFiscalCode, string(t)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write([]byte{byte(sequence >> 24), byte(sequence >> 16), byte(sequence >> 8), byte(sequence)})
	sum := h.Sum(nil)
	return "rem-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}
