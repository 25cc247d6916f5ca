package events_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/promemoria/promemoria/events"
)

// FuzzDecode feeds events.Decode arbitrary bytes. Its seed corpus is every
// file under testdata (valid inputs, invalid inputs, outputs). It checks that
// Decode never panics and that:
//   - an error is always an *events.InvalidError with one of the reasons
//     Decode may give, wraps events.ErrInvalid, and comes with no event;
//   - a nil error always comes with an event of an input type whose payload
//     has the type that matches it, and whose envelope passes the rules;
//   - the result does not depend on the subject type when it matches, and a
//     different subject type is always a type_mismatch;
//   - a decoded event, encoded again with encoding/json, decodes to an equal
//     payload.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{"testdata/*.json", "testdata/invalid/*", "testdata/output/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
	f.Add([]byte(nil))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"portal.up","time":"2021-05-05T08:45:00+02:00","data":{}}`))

	lim := testLimits()
	unlimited := lim
	unlimited.MaxBytes = 0
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := events.Decode(raw, "", lim)
		if err != nil {
			checkError(t, ev, err)
			// A subject type can only make things worse.
			if _, err2 := events.Decode(raw, events.TypePortalDown, lim); err2 == nil {
				t.Fatalf("input rejected without a subject type (%v) is accepted with one", err)
			}
			return
		}
		checkEvent(t, ev, lim)

		// The matching subject type changes nothing; any other input type
		// is a mismatch.
		ev2, err := events.Decode(raw, ev.Type, lim)
		if err != nil {
			t.Fatalf("accepted without a subject type, rejected with its own type %s: %v", ev.Type, err)
		}
		if d := diffAny(ev.Payload, ev2.Payload); d != "" {
			t.Fatalf("decoding with the subject type gives another payload: %s", d)
		}
		other := events.TypeTenderCancelled
		if ev.Type == other {
			other = events.TypePortalUp
		}
		if _, err := events.Decode(raw, other, lim); events.ReasonOf(err) != events.ReasonTypeMismatch {
			t.Fatalf("type %s on the subject of %s: got %v, want a type_mismatch", ev.Type, other, err)
		}

		// Round trip: what was accepted, re-encoded, is accepted again.
		again, err := json.Marshal(ev.Envelope)
		if err != nil {
			t.Fatalf("re-encoding an accepted envelope: %v", err)
		}
		ev3, err := events.Decode(again, ev.Type, unlimited)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\noriginal: %q\nre-encoded: %q", err, raw, again)
		}
		if ev3.ID != ev.ID || ev3.Source != ev.Source || !ev3.Time.Equal(ev.Time) {
			t.Fatalf("re-encoded envelope differs: %+v vs %+v", ev3.Envelope, ev.Envelope)
		}
		if d := diffAny(ev.Payload, ev3.Payload); d != "" {
			t.Fatalf("re-encoded event decodes to another payload: %s", d)
		}
	})
}

func checkError(t *testing.T, ev *events.Event, err error) {
	t.Helper()
	if ev != nil {
		t.Fatalf("Decode returned both an event and the error %v", err)
	}
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *events.InvalidError", err, err)
	}
	if ie.Reason == "" {
		t.Fatalf("error %v has an empty Reason", err)
	}
	if !slices.Contains(allReasons, ie.Reason) {
		t.Fatalf("error %v has reason %q, which Decode should never give", err, ie.Reason)
	}
	if !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("error %v does not wrap events.ErrInvalid", err)
	}
	if err.Error() == "" {
		t.Fatal("empty error message")
	}
}

func checkEvent(t *testing.T, ev *events.Event, lim events.Limits) {
	t.Helper()
	if ev == nil {
		t.Fatal("nil event with a nil error")
	}
	if !events.IsInput(ev.Type) {
		t.Fatalf("accepted type %q is not an input type", ev.Type)
	}
	want := payloadTypes[ev.Type]
	if got := reflect.TypeOf(ev.Payload); got != want {
		t.Fatalf("type %s decoded to a payload of type %v, want %v", ev.Type, got, want)
	}
	if reflect.ValueOf(ev.Payload).IsNil() {
		t.Fatalf("type %s decoded to a nil payload", ev.Type)
	}
	switch {
	case ev.SpecVersion != events.SpecVersion:
		t.Fatalf("accepted specversion %q", ev.SpecVersion)
	case ev.ID == "" || ev.Source == "":
		t.Fatalf("accepted an empty id or source: %+v", ev.Envelope)
	case ev.DataContentType != "" && ev.DataContentType != events.ContentType:
		t.Fatalf("accepted datacontenttype %q", ev.DataContentType)
	case ev.Time.Before(events.Earliest) || ev.Time.After(lim.Now().Add(lim.MaxFuture)):
		t.Fatalf("accepted time %s", ev.Time)
	}
	switch p := ev.Payload.(type) {
	case *events.TenderPublished:
		if len(p.Lots) == 0 || p.TenderID == "" || p.RUP.Email == "" {
			t.Fatalf("accepted an incomplete tender: %+v", p)
		}
	case *events.CIGAssigned:
		if p.CIG == "" || p.TenderID == "" || p.LotID == "" {
			t.Fatalf("accepted an incomplete cig_assigned: %+v", p)
		}
	case *events.AdmittedWithReserve:
		if p.Operator.FiscalCode == "" || p.Operator.Email == "" {
			t.Fatalf("accepted an operator without fiscal code or e-mail: %+v", p)
		}
	case *events.ContributionPaid:
		if p.Receipt == "" || p.OperatorFiscalCode == "" {
			t.Fatalf("accepted an incomplete contribution_paid: %+v", p)
		}
	}
}
