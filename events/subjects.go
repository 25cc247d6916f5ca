package events

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "procurement"

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// Subjects maps types to NATS subjects under a prefix.
type Subjects struct {
	Prefix string
}

// NewSubjects returns the subjects under prefix, or an error if prefix is not
// a valid sequence of NATS subject tokens.
func NewSubjects(prefix string) (Subjects, error) {
	if !prefixRe.MatchString(prefix) {
		return Subjects{}, fmt.Errorf("subject prefix %q: want dot-separated tokens of letters, digits, _ and -", prefix)
	}
	return Subjects{Prefix: prefix}, nil
}

// Of returns the subject of type t.
func (s Subjects) Of(t Type) string { return s.Prefix + "." + string(t) }

// TypeOf returns the type a subject stands for, or "" if subject is not
// under the prefix.
func (s Subjects) TypeOf(subject string) Type {
	t, ok := strings.CutPrefix(subject, s.Prefix+".")
	if !ok {
		return ""
	}
	return Type(t)
}

// Inputs returns the subject filters of the input stream.
func (s Subjects) Inputs() []string {
	return []string{s.Prefix + ".portal.>", s.Prefix + ".tender.>", s.Prefix + ".bid.>"}
}

// Outputs returns the subject filters of the output stream: reminders,
// advices, dead letters and the delivery stage's audit trail
// (delivery.sent, delivery.failed).
func (s Subjects) Outputs() []string {
	return []string{s.Prefix + ".reminder.>", s.Prefix + ".advice.>", s.Of(TypeDeadLetter), s.Prefix + ".delivery.>"}
}

// Deliverables returns the subject filters of what the delivery stage
// delivers: reminders and advices.
func (s Subjects) Deliverables() []string {
	return []string{s.Prefix + ".reminder.>", s.Prefix + ".advice.>"}
}
