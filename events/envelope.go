package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only CloudEvents version promemoria speaks.
const SpecVersion = "1.0"

// ContentType is the datacontenttype of every event's data.
const ContentType = "application/json"

// HeaderMsgID is the NATS header JetStream deduplicates on; publishers set it
// to the CloudEvents id.
const HeaderMsgID = "Nats-Msg-Id"

// Envelope is a CloudEvents 1.0 event in structured JSON mode.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            Type            `json:"type"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Subject         string          `json:"subject,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Event is a decoded, validated input event.
type Event struct {
	Envelope
	// Payload is one of *PortalChange, *TenderPublished, *CIGAssigned,
	// *TenderCancelled, *AdmittedWithReserve or *ContributionPaid.
	Payload any
}

// Limits bounds what Decode accepts.
type Limits struct {
	// MaxBytes is the largest message accepted.
	MaxBytes int
	// Now is the clock that judges times in the future.
	Now func() time.Time
	// MaxFuture is how far after Now an event's time may be (clock skew).
	MaxFuture time.Duration
}

// Earliest is the earliest time an event may carry: nothing in this domain
// predates the CIG itself.
var Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 64 << 10, Now: time.Now, MaxFuture: 24 * time.Hour}
}

// Decode parses raw as a CloudEvents envelope of one of the input types and
// validates its data. subjectType, if not empty, is the type implied by the
// NATS subject the message arrived on; it must match the envelope's type.
// Every error is an *InvalidError that names its Reason.
func Decode(raw []byte, subjectType Type, lim Limits) (*Event, error) {
	if lim.MaxBytes > 0 && len(raw) > lim.MaxBytes {
		return nil, invalid(ReasonOversized, "", "message is %d bytes, the limit is %d", len(raw), lim.MaxBytes)
	}
	if !utf8.Valid(raw) {
		return nil, invalid(ReasonInvalidUTF8, "", "message is not valid UTF-8")
	}
	if d := depth(raw); d > MaxDepth {
		return nil, invalid(ReasonTooDeep, "", "JSON nested %d levels deep, the limit is %d", d, MaxDepth)
	}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		if string(trimmed) == "null" {
			return nil, invalid(ReasonMissingField, "$", "the message is null, not a CloudEvent")
		}
		if len(trimmed) > 0 && json.Valid(trimmed) {
			return nil, invalid(ReasonBadEnvelope, "$", "a CloudEvent is a JSON object")
		}
		return nil, invalid(ReasonNotJSON, "", "a CloudEvent is a JSON object")
	}
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&env); err != nil {
		return nil, jsonError(err, "")
	}
	if rest := bytes.TrimSpace(raw[dec.InputOffset():]); len(rest) > 0 {
		return nil, invalid(ReasonNotJSON, "", "trailing data after the JSON object")
	}
	if err := env.validate(lim); err != nil {
		return nil, err
	}
	if subjectType != "" && subjectType != env.Type {
		return nil, invalid(ReasonTypeMismatch, "type", "envelope type %q does not match subject type %q", env.Type, subjectType)
	}
	payload, err := decodeData(env.Type, env.Data)
	if err != nil {
		return nil, err
	}
	ev := &Event{Envelope: env, Payload: payload}
	if err := ev.validate(lim); err != nil {
		return nil, err
	}
	return ev, nil
}

// MaxDepth is the deepest JSON nesting accepted: the contract needs 4.
const MaxDepth = 32

// depth returns the deepest nesting of objects and arrays in raw, ignoring
// brackets inside strings. It stops counting once past MaxDepth.
func depth(raw []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			d++
			if d > maxD {
				maxD = d
				if maxD > MaxDepth {
					return maxD
				}
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}

func (e *Envelope) validate(lim Limits) error {
	switch {
	case e.SpecVersion == "":
		return invalid(ReasonMissingField, "specversion", "required")
	case e.SpecVersion != SpecVersion:
		return invalid(ReasonBadEnvelope, "specversion", "must be %q, got %q", SpecVersion, e.SpecVersion)
	case strings.TrimSpace(e.ID) == "":
		return invalid(ReasonMissingField, "id", "required")
	case len(e.ID) > 256:
		return invalid(ReasonInvalidField, "id", "longer than 256 bytes")
	case strings.TrimSpace(e.Source) == "":
		return invalid(ReasonMissingField, "source", "required")
	case len(e.Source) > 1024:
		return invalid(ReasonInvalidField, "source", "longer than 1024 bytes")
	case hasControl(e.ID):
		return invalid(ReasonInvalidField, "id", "must not contain control characters")
	case hasControl(e.Source):
		return invalid(ReasonInvalidField, "source", "must not contain control characters")
	case e.Type == "":
		return invalid(ReasonMissingField, "type", "required")
	case !IsInput(e.Type):
		return invalid(ReasonUnknownType, "type", "%q is not an input type (want one of %s)", e.Type, typeList())
	case e.DataContentType != "" && e.DataContentType != ContentType:
		return invalid(ReasonBadEnvelope, "datacontenttype", "must be %q, got %q", ContentType, e.DataContentType)
	case len(e.Data) == 0 || bytes.Equal(e.Data, []byte("null")):
		return invalid(ReasonMissingField, "data", "required")
	}
	return checkTime("time", e.Time, lim, true)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func typeList() string {
	s := make([]string, len(InputTypes))
	for i, t := range InputTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// checkTime rejects a missing time, one before Earliest, and (when notFuture)
// one more than lim.MaxFuture after lim.Now().
func checkTime(field string, t time.Time, lim Limits, notFuture bool) error {
	if t.IsZero() {
		return invalid(ReasonMissingField, field, "required (RFC 3339)")
	}
	if t.Before(Earliest) {
		return invalid(ReasonBadTime, field, "%s is before %s", t.Format(time.RFC3339), Earliest.Format("2006-01-02"))
	}
	if lim.Now == nil {
		return nil
	}
	limit := 24 * time.Hour
	if !notFuture {
		limit = 20 * 365 * 24 * time.Hour
	} else if lim.MaxFuture > 0 {
		limit = lim.MaxFuture
	}
	if t.After(lim.Now().Add(limit)) {
		return invalid(ReasonBadTime, field, "%s is more than %s in the future", t.Format(time.RFC3339), limit)
	}
	return nil
}

func jsonError(err error, prefix string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if prefix != "" && field != "" {
			field = prefix + "." + field
		} else if field == "" {
			field = prefix
		}
		return &InvalidError{Reason: ReasonInvalidField, Field: field, Msg: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}
	case errors.As(err, &pe), strings.Contains(err.Error(), "Time.UnmarshalJSON"):
		return &InvalidError{Reason: ReasonBadTime, Field: prefix, Msg: "times are RFC 3339 strings", Err: err}
	case errors.As(err, &se):
		return &InvalidError{Reason: ReasonNotJSON, Field: prefix, Msg: fmt.Sprintf("at byte %d", se.Offset), Err: err}
	default:
		return &InvalidError{Reason: ReasonNotJSON, Field: prefix, Err: err}
	}
}
