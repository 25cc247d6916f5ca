package events

import (
	"errors"
	"fmt"
)

// Reason is a stable, machine-readable code that says why an input was
// dead-lettered. Reasons are part of the contract: metrics and the
// dead-letter payload carry them.
type Reason string

// The reasons an input can be rejected for.
const (
	ReasonOversized     Reason = "oversized"
	ReasonInvalidUTF8   Reason = "invalid_utf8"
	ReasonNotJSON       Reason = "not_json"
	ReasonTooDeep       Reason = "too_deep"
	ReasonBadEnvelope   Reason = "bad_envelope"
	ReasonUnknownType   Reason = "unknown_type"
	ReasonTypeMismatch  Reason = "type_mismatch"
	ReasonMissingField  Reason = "missing_field"
	ReasonInvalidField  Reason = "invalid_field"
	ReasonBadTime       Reason = "bad_time"
	ReasonInvalidCIG    Reason = "invalid_cig"
	ReasonIDReused      Reason = "id_reused"
	ReasonProcessFailed Reason = "processing_failed"
)

// ErrInvalid is wrapped by every *InvalidError, so callers can test any
// validation failure with errors.Is(err, events.ErrInvalid).
var ErrInvalid = errors.New("invalid event")

// InvalidError says why an input cannot be processed: a Reason code, the
// JSON path of the offending field if there is one, and a human message.
type InvalidError struct {
	Reason Reason
	Field  string
	Msg    string
	Err    error
}

// Error implements error.
func (e *InvalidError) Error() string {
	s := string(e.Reason)
	if e.Field != "" {
		s += ": " + e.Field
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrInvalid and the underlying cause, if any.
func (e *InvalidError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

func invalid(r Reason, field, format string, args ...any) *InvalidError {
	return &InvalidError{Reason: r, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason carried by err, or ReasonProcessFailed if err
// is not an *InvalidError.
func ReasonOf(err error) Reason {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ReasonProcessFailed
}
