package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
)

// testNow is the clock of every test: shortly after the last event of the
// May 2021 story the examples tell, so their times are in the past.
var testNow = time.Date(2021, 5, 14, 12, 0, 0, 0, time.UTC)

// testLimits are the default limits on the test clock.
func testLimits() events.Limits {
	lim := events.DefaultLimits()
	lim.Now = func() time.Time { return testNow }
	return lim
}

// allReasons are the reasons Decode may return. id_reused and
// processing_failed are the worker's, never Decode's.
var allReasons = []events.Reason{
	events.ReasonOversized, events.ReasonInvalidUTF8, events.ReasonNotJSON, events.ReasonBadEnvelope,
	events.ReasonUnknownType, events.ReasonTypeMismatch, events.ReasonMissingField, events.ReasonInvalidField,
	events.ReasonBadTime, events.ReasonInvalidCIG, events.ReasonTooDeep,
}

// knownBugs are the invalid testdata files that events.Decode currently
// gets wrong; their cases are skipped with the message so they are easy to
// find. Remove an entry once Decode is fixed.
var knownBugs = map[string]string{}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// payloadTypes maps every input type to the type of its decoded payload.
var payloadTypes = map[events.Type]reflect.Type{
	events.TypePortalDown:          reflect.TypeFor[*events.PortalChange](),
	events.TypePortalUp:            reflect.TypeFor[*events.PortalChange](),
	events.TypeTenderPublished:     reflect.TypeFor[*events.TenderPublished](),
	events.TypeCIGAssigned:         reflect.TypeFor[*events.CIGAssigned](),
	events.TypeTenderCancelled:     reflect.TypeFor[*events.TenderCancelled](),
	events.TypeAdmittedWithReserve: reflect.TypeFor[*events.AdmittedWithReserve](),
	events.TypeContributionPaid:    reflect.TypeFor[*events.ContributionPaid](),
}

// validExamples is what each testdata/<type>.json decodes to.
var validExamples = map[events.Type]struct {
	id, source, time string
	payload          any
}{
	events.TypePortalDown: {"7c1e2a4f-0b6d-4e1a-9f3c-2d5b8a610001", "/anac/status-monitor", "2021-05-03T06:40:00Z",
		&events.PortalChange{
			Services: []string{"simog", "smartcig", "payments", "fvoe"},
			At:       utc("2021-05-03T06:30:00Z"),
			Notice:   "Guasto all'alimentazione elettrica presso la sede ANAC: portale non raggiungibile.",
		}},
	events.TypePortalUp: {"7c1e2a4f-0b6d-4e1a-9f3c-2d5b8a610002", "/anac/status-monitor", "2021-05-05T06:50:00Z",
		&events.PortalChange{
			Services: []string{"simog", "payments", "fvoe"},
			At:       utc("2021-05-05T06:45:00Z"),
			Notice:   "Servizi ripristinati, tranne la generazione dello Smart CIG.",
		}},
	events.TypeTenderPublished: {"b3f9d2c0-5a77-4c0e-8e21-6a4d9e720001", "/sa/80012345676/e-procurement", "2021-05-04T07:05:00Z",
		&events.TenderPublished{
			TenderID:      "2021/0042",
			Title:         "Lavori di adeguamento sismico della scuola primaria G. Rodari",
			Authority:     events.Authority{FiscalCode: "80012345676", Name: "Comune di Esempio"},
			RUP:           events.Person{Name: "Maria Rossi", Email: "maria.rossi@comune.esempio.it"},
			PublishedAt:   utc("2021-05-04T07:00:00Z"),
			OfferDeadline: utc("2021-05-20T10:00:00Z"),
			Lots: []events.Lot{
				{LotID: "1", CIGService: "simog", BaseAmountCents: 45000000},
				{LotID: "2", CIG: "B00012EADB", CIGService: "simog", BaseAmountCents: 18000000},
			},
		}},
	events.TypeCIGAssigned: {"b3f9d2c0-5a77-4c0e-8e21-6a4d9e720002", "/sa/80012345676/e-procurement", "2021-05-05T09:20:00Z",
		&events.CIGAssigned{TenderID: "2021/0042", LotID: "1", CIG: "918052266A"}},
	events.TypeTenderCancelled: {"b3f9d2c0-5a77-4c0e-8e21-6a4d9e720003", "/sa/80012345676/e-procurement", "2021-05-10T10:00:00Z",
		&events.TenderCancelled{TenderID: "2021/0043", Reason: "Revoca in autotutela per sopravvenuta carenza di copertura finanziaria."}},
	events.TypeAdmittedWithReserve: {"b3f9d2c0-5a77-4c0e-8e21-6a4d9e720004", "/sa/80012345676/e-procurement", "2021-05-04T14:00:00Z",
		&events.AdmittedWithReserve{
			TenderID:     "2021/0042",
			LotID:        "1",
			Operator:     events.Operator{FiscalCode: "01234567897", Name: "Edilnord S.r.l.", Email: "gare@pec.edilnord.it"},
			RegulariseBy: utc("2021-05-14T10:00:00Z"),
		}},
	events.TypeContributionPaid: {"b3f9d2c0-5a77-4c0e-8e21-6a4d9e720005", "/sa/80012345676/e-procurement", "2021-05-12T15:10:00Z",
		&events.ContributionPaid{TenderID: "2021/0042", LotID: "1", OperatorFiscalCode: "01234567897", Receipt: "IUV 01000000001234567"}},
}

// diff compares two values of the same type field by field, comparing
// times as instants; it returns "" if they are equal.
func diff(path string, a, b reflect.Value) string {
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: type %s != %s", path, a.Type(), b.Type())
	}
	if a.Type() == reflect.TypeFor[time.Time]() {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		if !ta.Equal(tb) {
			return fmt.Sprintf("%s: %s != %s", path, ta.Format(time.RFC3339Nano), tb.Format(time.RFC3339Nano))
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil vs non-nil", path)
			}
			return ""
		}
		return diff(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if d := diff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d != %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface())
		}
		return ""
	default:
		if !a.Equal(b) {
			return fmt.Sprintf("%s: %#v != %#v", path, a.Interface(), b.Interface())
		}
		return ""
	}
}

func diffAny(a, b any) string { return diff("", reflect.ValueOf(a), reflect.ValueOf(b)) }

// asInvalid returns err as an *events.InvalidError, failing the test if it
// is not one.
func asInvalid(t *testing.T, err error) *events.InvalidError {
	t.Helper()
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *events.InvalidError", err, err)
	}
	if !errors.Is(err, events.ErrInvalid) {
		t.Errorf("error %v does not wrap events.ErrInvalid", err)
	}
	if !strings.HasPrefix(err.Error(), string(ie.Reason)) {
		t.Errorf("error text %q does not start with its reason %q", err.Error(), ie.Reason)
	}
	return ie
}

func TestDecodeValidTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var seen []events.Type
	for _, f := range files {
		typ := events.Type(strings.TrimSuffix(filepath.Base(f), ".json"))
		seen = append(seen, typ)
		t.Run(string(typ), func(t *testing.T) {
			want, ok := validExamples[typ]
			if !ok {
				t.Fatalf("%s: no expected payload for type %q (is the file named <type>.json?)", f, typ)
			}
			raw := readFile(t, f)
			for _, subject := range []events.Type{typ, ""} {
				ev, err := events.Decode(raw, subject, testLimits())
				if err != nil {
					t.Fatalf("Decode(%s, subject type %q): %v", f, subject, err)
				}
				if ev.Type != typ || ev.ID != want.id || ev.Source != want.source || !ev.Time.Equal(utc(want.time)) ||
					ev.SpecVersion != events.SpecVersion || ev.DataContentType != events.ContentType {
					t.Errorf("envelope = %+v, want type %s id %s source %s time %s", ev.Envelope, typ, want.id, want.source, want.time)
				}
				if got := reflect.TypeOf(ev.Payload); got != payloadTypes[typ] {
					t.Fatalf("payload is %s, want %s", got, payloadTypes[typ])
				}
				if d := diffAny(ev.Payload, want.payload); d != "" {
					t.Errorf("payload differs from the expected one at %s", d)
				}
			}
		})
	}
	for _, typ := range events.InputTypes {
		if !slices.Contains(seen, typ) {
			t.Errorf("no valid example testdata/%s.json for input type %s", typ, typ)
		}
	}
}

func TestDecodeInvalidTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("only %d invalid examples found", len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			reason, _, ok := strings.Cut(name, ".")
			if !ok || !slices.Contains(allReasons, events.Reason(reason)) {
				t.Fatalf("file name %q does not start with a Decode reason followed by '.' (one of %v)", name, allReasons)
			}
			if bug, ok := knownBugs[name]; ok {
				t.Skip(bug)
			}
			raw := readFile(t, f)
			ev, err := events.Decode(raw, "", testLimits())
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", ev.Payload)
			}
			if ev != nil {
				t.Errorf("Decode returned an event with an error")
			}
			ie := asInvalid(t, err)
			if ie.Reason != events.Reason(reason) {
				t.Fatalf("reason %q, want %q (error: %v)", ie.Reason, reason, err)
			}
			switch ie.Reason {
			case events.ReasonMissingField, events.ReasonInvalidField, events.ReasonUnknownType,
				events.ReasonBadEnvelope, events.ReasonInvalidCIG:
				if ie.Field == "" {
					t.Errorf("%s error names no field: %v", ie.Reason, err)
				}
			}
		})
	}
	for name := range knownBugs {
		if _, err := os.Stat(filepath.Join("testdata/invalid", name)); err != nil {
			t.Errorf("knownBugs names %s, which does not exist", name)
		}
	}
}

// event returns the valid example of typ with edit applied to its decoded
// JSON, re-encoded.
func event(t *testing.T, typ events.Type, edit func(env map[string]any, data map[string]any)) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/"+string(typ)+".json"), &env); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(env, env["data"].(map[string]any))
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

func TestDecodeInline(t *testing.T) {
	valid := event(t, events.TypeCIGAssigned, nil)
	// padded returns a valid cig_assigned event of exactly n bytes, padded
	// with an unknown envelope attribute.
	padded := func(n int) []byte {
		pre := event(t, events.TypeCIGAssigned, func(env, _ map[string]any) { env["xpadding"] = "" })
		pad := n - len(pre)
		if pad < 0 {
			t.Fatalf("cannot pad to %d bytes", n)
		}
		return event(t, events.TypeCIGAssigned, func(env, _ map[string]any) { env["xpadding"] = strings.Repeat("p", pad) })
	}
	nested := func(depth int, open, close string) string {
		return strings.Repeat(open, depth) + strings.Repeat(close, depth)
	}
	// spliced inserts "key":value (value raw JSON) first into the
	// envelope, or into data if inData.
	spliced := func(typ events.Type, inData bool, key, value string) []byte {
		raw := string(event(t, typ, nil))
		kv := fmt.Sprintf("%q:%s,", key, value)
		if inData {
			return []byte(strings.Replace(raw, `"data":{`, `"data":{`+kv, 1))
		}
		return []byte("{" + kv + raw[1:])
	}
	withEnv := func(typ events.Type, k string, v any) []byte {
		return event(t, typ, func(env, _ map[string]any) { env[k] = v })
	}
	withData := func(typ events.Type, k string, v any) []byte {
		return event(t, typ, func(_, data map[string]any) { data[k] = v })
	}
	lots := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = map[string]any{"lot_id": fmt.Sprint(i + 1)}
		}
		return l
	}
	v2, err := cig.GenerateSIMOGv2('C', 0x12345)
	if err != nil {
		t.Fatal(err)
	}
	limitsWith := func(f func(*events.Limits)) events.Limits { l := testLimits(); f(&l); return l }

	cases := []struct {
		name    string
		raw     []byte
		subject events.Type
		limits  *events.Limits
		reason  events.Reason // "" means valid
		field   string        // checked when not ""
		bug     string        // a known bug: skip
	}{
		// size
		{name: "exactly the size limit", raw: padded(64 << 10)},
		{name: "one byte over the size limit", raw: padded(64<<10 + 1), reason: events.ReasonOversized},
		{name: "oversized garbage is oversized, not not_json", raw: []byte(strings.Repeat("\xff", 70<<10)), reason: events.ReasonOversized},
		{name: "custom size limit", raw: valid, limits: new(limitsWith(func(l *events.Limits) { l.MaxBytes = 100 })), reason: events.ReasonOversized},
		{name: "no size limit", raw: padded(200 << 10), limits: new(limitsWith(func(l *events.Limits) { l.MaxBytes = 0 }))},

		// nesting: the envelope is level 1, data level 2, lots 3, a lot 4
		{name: "unknown attribute nested to the depth limit", raw: withEnv(events.TypeCIGAssigned, "xnested", json.RawMessage(nested(events.MaxDepth-1, "[", "]")))},
		{name: "unknown attribute nested one past the depth limit", raw: withEnv(events.TypeCIGAssigned, "xnested", json.RawMessage(nested(events.MaxDepth, "[", "]"))), reason: events.ReasonTooDeep},
		{name: "unknown data field nested to the depth limit", raw: withData(events.TypeCIGAssigned, "xnested", json.RawMessage(strings.Repeat(`{"a":`, events.MaxDepth-2)+"1"+strings.Repeat("}", events.MaxDepth-2)))},
		{name: "unknown data field nested one past the depth limit", raw: withData(events.TypeCIGAssigned, "xnested", json.RawMessage(strings.Repeat(`{"a":`, events.MaxDepth-1)+"1"+strings.Repeat("}", events.MaxDepth-1))), reason: events.ReasonTooDeep},
		{name: "brackets inside strings do not count", raw: withData(events.TypePortalUp, "notice", strings.Repeat("[{", 1000)+`\"`+strings.Repeat("]}", 1000))},
		{name: "nesting beyond 10000 in an attribute", raw: spliced(events.TypeCIGAssigned, false, "xnested", nested(10001, "[", "]")), reason: events.ReasonTooDeep},
		{name: "nesting beyond 10000 in data", raw: spliced(events.TypePortalUp, true, "services", nested(10001, "[", "]")), reason: events.ReasonTooDeep},
		{name: "a million unclosed brackets without size limit", raw: []byte(strings.Repeat("[", 1<<20)), limits: new(limitsWith(func(l *events.Limits) { l.MaxBytes = 0 })), reason: events.ReasonTooDeep},
		{name: "a million unclosed braces under the size limit", raw: []byte(strings.Repeat(`{"a":`, 1<<20)), reason: events.ReasonOversized},
		{name: "deep nesting that is not JSON", raw: []byte(strings.Repeat("[x", 40)), reason: events.ReasonTooDeep},

		// trailing data
		{name: "trailing newlines are fine", raw: append(slices.Clone(valid), "\n\r\n\t "...)},
		{name: "trailing word", raw: append(slices.Clone(valid), " x"...), reason: events.ReasonNotJSON},
		{name: "trailing second object", raw: append(slices.Clone(valid), valid...), reason: events.ReasonNotJSON},
		{name: "trailing empty object", raw: append(slices.Clone(valid), "{}"...), reason: events.ReasonNotJSON},
		{name: "trailing NUL", raw: append(slices.Clone(valid), 0), reason: events.ReasonNotJSON},
		{name: "trailing closing brace", raw: append(slices.Clone(valid), '}'), reason: events.ReasonNotJSON},
		{name: "trailing closing brackets", raw: append(slices.Clone(valid), " ]]]"...), reason: events.ReasonNotJSON},

		// type and subject
		{name: "subject type matches", raw: valid, subject: events.TypeCIGAssigned},
		{name: "subject of another input type", raw: valid, subject: events.TypeTenderCancelled, reason: events.ReasonTypeMismatch, field: "type"},
		{name: "subject of an output type", raw: valid, subject: events.TypeReminderCIG, reason: events.ReasonTypeMismatch, field: "type"},
		{name: "portal.up on the portal.down subject", raw: event(t, events.TypePortalUp, nil), subject: events.TypePortalDown, reason: events.ReasonTypeMismatch},
		{name: "unknown type is reported before the subject", raw: withEnv(events.TypePortalUp, "type", "portal.restored"), subject: events.TypePortalUp, reason: events.ReasonUnknownType, field: "type"},

		// the envelope's time
		{name: "time at the clock-skew limit", raw: withEnv(events.TypePortalUp, "time", rfc(testNow.Add(24*time.Hour)))},
		{name: "time past the clock-skew limit", raw: withEnv(events.TypePortalUp, "time", rfc(testNow.Add(24*time.Hour+time.Second))), reason: events.ReasonBadTime, field: "time"},
		{name: "time past a custom clock-skew limit", raw: withEnv(events.TypePortalUp, "time", rfc(testNow.Add(2*time.Hour))),
			limits: new(limitsWith(func(l *events.Limits) { l.MaxFuture = time.Hour })), reason: events.ReasonBadTime, field: "time"},
		{name: "time in year 9999", raw: withEnv(events.TypePortalUp, "time", "9999-12-31T23:59:59Z"), reason: events.ReasonBadTime, field: "time"},
		{name: "far future is not checked without a clock", raw: withEnv(events.TypePortalUp, "time", "2999-01-01T00:00:00Z"),
			limits: new(limitsWith(func(l *events.Limits) { l.Now = nil }))},
		{name: "time on 1 January 2000", raw: withEnv(events.TypePortalUp, "time", "2000-01-01T00:00:00Z")},
		{name: "time one second before 2000", raw: withEnv(events.TypePortalUp, "time", "1999-12-31T23:59:59Z"), reason: events.ReasonBadTime, field: "time"},
		{name: "time in 1970", raw: withEnv(events.TypePortalUp, "time", "1970-01-01T00:00:00Z"), reason: events.ReasonBadTime, field: "time"},
		{name: "time before 2000 by offset", raw: withEnv(events.TypePortalUp, "time", "2000-01-01T00:30:00+01:00"), reason: events.ReasonBadTime},
		{name: "zero time counts as absent", raw: withEnv(events.TypePortalUp, "time", "0001-01-01T00:00:00Z"), reason: events.ReasonMissingField, field: "time"},
		{name: "fractional seconds and offset", raw: withEnv(events.TypePortalUp, "time", "2021-05-05T08:50:00.123456789+02:00")},
		{name: "unparsable time names its field", raw: withEnv(events.TypePortalUp, "time", "yesterday"), reason: events.ReasonBadTime, field: "time",
			bug: "BUG (minor): a time that fails to parse is reported with an empty Field (or just \"data\" inside data), not the field's path"},
		{name: "numeric time", raw: withEnv(events.TypePortalUp, "time", 1620197400), reason: events.ReasonBadTime},
		{name: "boolean time", raw: withEnv(events.TypePortalUp, "time", true), reason: events.ReasonBadTime},
		{name: "time object", raw: withEnv(events.TypePortalUp, "time", map[string]any{}), reason: events.ReasonBadTime},

		// times inside data
		{name: "data.at past the clock-skew limit", raw: withData(events.TypePortalDown, "at", rfc(testNow.Add(25*time.Hour))), reason: events.ReasonBadTime, field: "data.at"},
		{name: "data.at before 2000", raw: withData(events.TypePortalDown, "at", "1999-05-03T08:30:00+02:00"), reason: events.ReasonBadTime, field: "data.at"},
		{name: "data.at may precede time", raw: withData(events.TypePortalDown, "at", "2021-05-01T00:00:00Z")},
		{name: "data.at null is absent", raw: withData(events.TypePortalDown, "at", nil)},
		{name: "published_at past the clock-skew limit", raw: withData(events.TypeTenderPublished, "published_at", rfc(testNow.AddDate(0, 1, 0))), reason: events.ReasonBadTime, field: "data.published_at"},
		{name: "offer_deadline 19 years ahead", raw: withData(events.TypeTenderPublished, "offer_deadline", rfc(testNow.AddDate(19, 0, 0)))},
		{name: "offer_deadline 21 years ahead", raw: withData(events.TypeTenderPublished, "offer_deadline", rfc(testNow.AddDate(21, 0, 0))), reason: events.ReasonBadTime, field: "data.offer_deadline"},
		{name: "offer_deadline already passed", raw: withData(events.TypeTenderPublished, "offer_deadline", "2021-05-01T12:00:00+02:00")},
		{name: "offer_deadline before 2000", raw: withData(events.TypeTenderPublished, "offer_deadline", "1999-05-20T12:00:00+02:00"), reason: events.ReasonBadTime, field: "data.offer_deadline"},
		{name: "regularise_by 21 years ahead", raw: withData(events.TypeAdmittedWithReserve, "regularise_by", rfc(testNow.AddDate(21, 0, 0))), reason: events.ReasonBadTime, field: "data.regularise_by"},
		{name: "regularise_by before 2000", raw: withData(events.TypeAdmittedWithReserve, "regularise_by", "1999-01-01T00:00:00Z"), reason: events.ReasonBadTime, field: "data.regularise_by"},
		{name: "regularise_by absent", raw: event(t, events.TypeAdmittedWithReserve, func(_, d map[string]any) { delete(d, "regularise_by") })},
		{name: "numeric data.at", raw: withData(events.TypePortalDown, "at", 1620023400), reason: events.ReasonBadTime},

		// envelope
		{name: "datacontenttype may be absent", raw: event(t, events.TypePortalUp, func(env, _ map[string]any) { delete(env, "datacontenttype") })},
		{name: "CloudEvents subject and extension attributes are allowed", raw: event(t, events.TypePortalUp, func(env, _ map[string]any) {
			env["subject"] = "simog"
			env["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		})},
		{name: "unknown data fields are ignored", raw: withData(events.TypeCIGAssigned, "ocid", "ocds-hu01ve-7608960")},
		{name: "id of 256 bytes", raw: withEnv(events.TypePortalUp, "id", strings.Repeat("i", 256))},
		{name: "id of 257 bytes", raw: withEnv(events.TypePortalUp, "id", strings.Repeat("i", 257)), reason: events.ReasonInvalidField, field: "id"},
		{name: "source of 1025 bytes", raw: withEnv(events.TypePortalUp, "source", strings.Repeat("s", 1025)), reason: events.ReasonInvalidField, field: "source"},
		{name: "blank source", raw: withEnv(events.TypePortalUp, "source", " \t"), reason: events.ReasonMissingField, field: "source"},
		{name: "specversion 1.0.2", raw: withEnv(events.TypePortalUp, "specversion", "1.0.2"), reason: events.ReasonBadEnvelope, field: "specversion"},
		{name: "data as a string", raw: withEnv(events.TypeCIGAssigned, "data", `{"tender_id":"2021/0042"}`), reason: events.ReasonInvalidField, field: "data"},
		{name: "empty data object", raw: withEnv(events.TypeCIGAssigned, "data", map[string]any{}), reason: events.ReasonMissingField, field: "data.tender_id"},

		// data rules
		{name: "portal event with no services means all", raw: event(t, events.TypePortalDown, func(_, d map[string]any) { clear(d) })},
		{name: "portal event with an empty services list", raw: withData(events.TypePortalUp, "services", []any{})},
		{name: "64 services", raw: withData(events.TypePortalUp, "services", func() []any {
			s := make([]any, 64)
			for i := range s {
				s[i] = fmt.Sprintf("s%d", i)
			}
			return s
		}())},
		{name: "service name of 32 characters", raw: withData(events.TypePortalUp, "services", []any{"a" + strings.Repeat("b", 31)})},
		{name: "service name of 33 characters", raw: withData(events.TypePortalUp, "services", []any{"a" + strings.Repeat("b", 32)}), reason: events.ReasonInvalidField, field: "data.services[0]"},
		{name: "service name starting with a digit", raw: withData(events.TypePortalUp, "services", []any{"simog", "2fa"}), reason: events.ReasonInvalidField, field: "data.services[1]"},
		{name: "notice of 4096 bytes", raw: withData(events.TypePortalUp, "notice", strings.Repeat("n", 4096))},
		{name: "1000 lots", raw: withData(events.TypeTenderPublished, "lots", lots(1000))},
		{name: "1001 lots", raw: withData(events.TypeTenderPublished, "lots", lots(1001)), reason: events.ReasonInvalidField, field: "data.lots"},
		{name: "lot without base amount", raw: withData(events.TypeTenderPublished, "lots", lots(1))},
		{name: "lot with an unchecked CIG is accepted (the worker treats it as absent)", raw: withData(events.TypeTenderPublished, "lots",
			[]any{map[string]any{"lot_id": "1", "cig": "B00012EADC"}})},
		{name: "duplicate lot names the second", raw: withData(events.TypeTenderPublished, "lots", []any{
			map[string]any{"lot_id": "1"}, map[string]any{"lot_id": "2"}, map[string]any{"lot_id": "1"}}),
			reason: events.ReasonInvalidField, field: "data.lots[2].lot_id"},
		{name: "authority may be absent", raw: event(t, events.TypeTenderPublished, func(_, d map[string]any) { delete(d, "authority"); delete(d, "title") })},
		{name: "rup email missing", raw: withData(events.TypeTenderPublished, "rup", map[string]any{"name": "Maria Rossi"}), reason: events.ReasonMissingField, field: "data.rup.email"},
		{name: "tender id of 200 characters", raw: withData(events.TypeCIGAssigned, "tender_id", strings.Repeat("è", 200))},
		{name: "tender id of 201 characters", raw: withData(events.TypeCIGAssigned, "tender_id", strings.Repeat("è", 201)), reason: events.ReasonInvalidField, field: "data.tender_id"},
		{name: "operator name may be absent", raw: event(t, events.TypeAdmittedWithReserve, func(_, d map[string]any) {
			delete(d["operator"].(map[string]any), "name")
		})},
		{name: "cancellation reason may be absent", raw: event(t, events.TypeTenderCancelled, func(_, d map[string]any) { delete(d, "reason") })},

		// CIGs
		{name: "SIMOG v2 CIG from the generator", raw: withData(events.TypeCIGAssigned, "cig", v2)},
		{name: "ANAC's test CIG", raw: withData(events.TypeCIGAssigned, "cig", "B00012EADB")},
		{name: "Smart CIG", raw: withData(events.TypeCIGAssigned, "cig", "Z3B3885F48")},
		{name: "Smart CIG with another letter", raw: withData(events.TypeCIGAssigned, "cig", "X3B3885F48")},
		{name: "CIG beginning with V is accepted unverified", raw: withData(events.TypeCIGAssigned, "cig", "V12345678A")},
		{name: "CIG with a trailing space is trimmed", raw: withData(events.TypeCIGAssigned, "cig", "918052266A ")},
		{name: "CIG with a leading space is trimmed", raw: withData(events.TypeCIGAssigned, "cig", " 918052266A")},
		{name: "CIG in lower case is upper-cased", raw: withData(events.TypeCIGAssigned, "cig", " b00012eadb\t")},
		{name: "CIG with a space inside", raw: withData(events.TypeCIGAssigned, "cig", "918052 266A"), reason: events.ReasonInvalidCIG, field: "data.cig"},
		{name: "CIG of spaces only", raw: withData(events.TypeCIGAssigned, "cig", "   "), reason: events.ReasonMissingField, field: "data.cig"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.bug != "" {
				t.Skip(c.bug)
			}
			lim := testLimits()
			if c.limits != nil {
				lim = *c.limits
			}
			ev, err := events.Decode(c.raw, c.subject, lim)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got, want := reflect.TypeOf(ev.Payload), payloadTypes[ev.Type]; got != want {
					t.Fatalf("payload %s, want %s", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode accepted it, want %s", c.reason)
			}
			ie := asInvalid(t, err)
			if ie.Reason != c.reason {
				t.Fatalf("reason %q, want %q (error: %.300v)", ie.Reason, c.reason, err)
			}
			if c.field != "" && ie.Field != c.field {
				t.Errorf("field %q, want %q (error: %.300v)", ie.Field, c.field, err)
			}
		})
	}
}

// TestDecodeEmptyServicesMeansAll checks that an absent and an empty
// services list both decode to an empty list, which the worker reads as
// "every service".
func TestDecodeEmptyServicesMeansAll(t *testing.T) {
	for _, services := range []any{nil, []any{}} {
		raw := event(t, events.TypePortalUp, func(_, d map[string]any) { d["services"] = services })
		ev, err := events.Decode(raw, events.TypePortalUp, testLimits())
		if err != nil {
			t.Fatal(err)
		}
		if p := ev.Payload.(*events.PortalChange); len(p.Services) != 0 {
			t.Errorf("services %v decoded to %v", services, p.Services)
		}
	}
}

func TestReasonOf(t *testing.T) {
	_, err := events.Decode([]byte("{"), "", testLimits())
	if got := events.ReasonOf(err); got != events.ReasonNotJSON {
		t.Errorf("ReasonOf(Decode error) = %q", got)
	}
	if got := events.ReasonOf(fmt.Errorf("wrapped: %w", err)); got != events.ReasonNotJSON {
		t.Errorf("ReasonOf(wrapped Decode error) = %q", got)
	}
	if got := events.ReasonOf(errors.New("nats: timeout")); got != events.ReasonProcessFailed {
		t.Errorf("ReasonOf(other error) = %q, want %q", got, events.ReasonProcessFailed)
	}
}

// TestDecodeNormalisesCIGs checks that the CIGs of both events that carry
// one come out trimmed and upper-cased.
func TestDecodeNormalisesCIGs(t *testing.T) {
	now := time.Now().UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		typ  events.Type
		data string
		got  func(any) string
	}{
		{events.TypeCIGAssigned, `{"tender_id":"T","lot_id":"1","cig":" b00012eadb "}`, func(p any) string { return p.(*events.CIGAssigned).CIG }},
		{events.TypeTenderPublished, `{"tender_id":"T","rup":{"name":"R","email":"r@x.it"},"published_at":"` + now + `","offer_deadline":"` + now + `","lots":[{"lot_id":"1","cig":"\tz3b3885f48 ","base_amount_cents":1}]}`,
			func(p any) string { return p.(*events.TenderPublished).Lots[0].CIG }},
	} {
		raw := fmt.Sprintf(`{"specversion":"1.0","id":"n","source":"s","type":%q,"time":%q,"data":%s}`, tc.typ, now, tc.data)
		ev, err := events.Decode([]byte(raw), tc.typ, events.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if got := tc.got(ev.Payload); got != "B00012EADB" && got != "Z3B3885F48" {
			t.Errorf("%s: CIG %q, want it trimmed and upper-cased", tc.typ, got)
		}
	}
}
