package events_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

// This file keeps asyncapi.yaml (and README.md) in step with the code:
//   - every example in the document decodes: inputs with events.Decode,
//     outputs strictly (unknown fields are errors) into the Go types, and it
//     is the same as the testdata file of its type;
//   - the channels are exactly the input types and the outputs under the
//     default prefix, with a receive or send operation each;
//   - every schema has the JSON fields of its Go struct (nested structs
//     included) with matching JSON types, and lists as required exactly the
//     fields Decode requires (inputs: a field is required if removing it from
//     the valid example makes Decode fail with missing_field) or that the
//     encoder always writes (outputs: no omitempty/omitzero);
//   - the schemas accept every example and reject the invalid testdata,
//     except where a rule cannot be said in JSON Schema.

const asyncAPIFile = "asyncapi.yaml"

// outputTypes are the types promemoria publishes, with their data types.
var outputTypes = map[events.Type]reflect.Type{
	events.TypeReminderCIG:          reflect.TypeFor[events.Reminder](),
	events.TypeReminderContribution: reflect.TypeFor[events.Reminder](),
	events.TypeReminderEscalation:   reflect.TypeFor[events.Reminder](),
	events.TypeReminderResolved:     reflect.TypeFor[events.Resolved](),
	events.TypeAdviceExtension:      reflect.TypeFor[events.Advice](),
	events.TypeDeadLetter:           reflect.TypeFor[events.DeadLetter](),
	events.TypeDeliverySent:         reflect.TypeFor[events.Delivery](),
	events.TypeDeliveryFailed:       reflect.TypeFor[events.Delivery](),
}

// dataTypes maps every type to the Go type of its data.
func dataType(t events.Type) reflect.Type {
	if pt, ok := payloadTypes[t]; ok {
		return pt.Elem()
	}
	return outputTypes[t]
}

// spec is a parsed AsyncAPI document.
type spec struct {
	root map[string]any
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	var root map[string]any
	if err := yaml.Unmarshal(readFile(t, asyncAPIFile), &root); err != nil {
		t.Fatalf("%s is not valid YAML: %v", asyncAPIFile, err)
	}
	if root["asyncapi"] != "3.0.0" {
		t.Fatalf("%s: asyncapi is %v, want 3.0.0", asyncAPIFile, root["asyncapi"])
	}
	return &spec{root: root}
}

// pointer returns what a local reference ("#/a/b") points to.
func (s *spec) pointer(ref string) (any, error) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q is not local", ref)
	}
	var cur any = s.root
	for _, tok := range strings.Split(path, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q: %q is not inside an object", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("reference %q: no %q", ref, tok)
		}
	}
	return cur, nil
}

// deref follows $ref chains; it returns the object and the last reference
// followed ("" if none).
func (s *spec) deref(t *testing.T, v any) (map[string]any, string) {
	t.Helper()
	id := ""
	for range 32 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", id, v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, id
		}
		if len(m) > 1 {
			t.Errorf("%s: $ref %s has sibling keywords %v, which JSON Schema ignores: use allOf", id, ref, slices.Sorted(maps.Keys(m)))
		}
		var err error
		if v, err = s.pointer(ref); err != nil {
			t.Fatal(err)
		}
		id = ref
	}
	t.Fatalf("reference loop at %s", id)
	return nil, ""
}

// flatten resolves a schema and merges its allOf parts into one: properties
// of all parts (a property given by several parts becomes their allOf),
// required of all parts, other keywords from the last part that has them.
// Its id is the reference it came from, or the only id among its parts.
func (s *spec) flatten(t *testing.T, v any) (map[string]any, string) {
	t.Helper()
	m, id := s.deref(t, v)
	parts, _ := m["allOf"].([]any)
	if len(parts) == 0 {
		return m, id
	}
	out := map[string]any{}
	props := map[string][]any{}
	var required []any
	var ids []string
	merge := func(p map[string]any) {
		for k, v := range p {
			switch k {
			case "properties":
				for name, ps := range v.(map[string]any) {
					props[name] = append(props[name], ps)
				}
			case "required":
				for _, r := range v.([]any) {
					if !slices.Contains(required, r) {
						required = append(required, r)
					}
				}
			case "allOf":
			default:
				out[k] = v
			}
		}
	}
	for _, p := range parts {
		fp, pid := s.flatten(t, p)
		if pid != "" {
			ids = append(ids, pid)
		}
		merge(fp)
	}
	merge(m)
	if len(props) > 0 {
		pm := map[string]any{}
		for name, list := range props {
			if len(list) == 1 {
				pm[name] = list[0]
			} else {
				pm[name] = map[string]any{"allOf": list}
			}
		}
		out["properties"] = pm
	}
	if len(required) > 0 {
		out["required"] = required
	}
	if id == "" && len(ids) == 1 {
		id = ids[0]
	}
	return out, id
}

func strs(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

// channel is one channel of the document with its single message.
type channel struct {
	id, address string
	typ         events.Type
	input       bool
	message     map[string]any
	messageID   string
}

func (s *spec) channels(t *testing.T) []channel {
	t.Helper()
	chans, ok := s.root["channels"].(map[string]any)
	if !ok {
		t.Fatal("no channels")
	}
	var out []channel
	for _, id := range slices.Sorted(maps.Keys(chans)) {
		ch := chans[id].(map[string]any)
		addr, _ := ch["address"].(string)
		typ, ok := strings.CutPrefix(addr, events.DefaultPrefix+".")
		if !ok {
			t.Errorf("channel %s: address %q does not start with %q", id, addr, events.DefaultPrefix+".")
		}
		msgs, _ := ch["messages"].(map[string]any)
		if len(msgs) != 1 {
			t.Errorf("channel %s has %d messages, want 1", id, len(msgs))
			continue
		}
		for mid, m := range msgs {
			msg, _ := s.deref(t, m)
			out = append(out, channel{id: id, address: addr, typ: events.Type(typ), input: events.IsInput(events.Type(typ)), message: msg, messageID: mid})
		}
	}
	return out
}

// jsonValue converts a YAML value to what encoding/json would decode the
// same JSON to (numbers become float64).
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonFile(t *testing.T, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(readFile(t, path), &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestAsyncAPIChannels checks that the channels are the input types and
// the outputs, each with one operation: receive for inputs, send for outputs.
func TestAsyncAPIChannels(t *testing.T) {
	s := loadSpec(t)
	var want, got []string
	for _, typ := range events.InputTypes {
		want = append(want, events.DefaultPrefix+"."+string(typ))
	}
	for typ := range outputTypes {
		want = append(want, events.DefaultPrefix+"."+string(typ))
	}
	chans := s.channels(t)
	for _, c := range chans {
		got = append(got, c.address)
	}
	slices.Sort(want)
	slices.Sort(got)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s has no channel for %s", asyncAPIFile, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s has a channel %s that is neither an input type (events.InputTypes) nor an output", asyncAPIFile, g)
		}
	}
	if len(got) != len(slices.Compact(slices.Clone(got))) {
		t.Errorf("%s has two channels with the same address: %v", asyncAPIFile, got)
	}

	ops, _ := s.root["operations"].(map[string]any)
	byChannel := map[string]int{}
	for name, o := range ops {
		op := o.(map[string]any)
		ch, ref := s.deref(t, op["channel"])
		addr, _ := ch["address"].(string)
		byChannel[addr]++
		want := "send"
		if events.IsInput(events.Type(strings.TrimPrefix(addr, events.DefaultPrefix+"."))) {
			want = "receive"
		}
		if op["action"] != want {
			t.Errorf("operation %s on %s: action %v, want %s (promemoria receives inputs and sends outputs)", name, addr, op["action"], want)
		}
		msgs, _ := op["messages"].([]any)
		if len(msgs) != 1 {
			t.Errorf("operation %s has %d messages, want 1", name, len(msgs))
		}
		for _, m := range msgs {
			if r, _ := m.(map[string]any)["$ref"].(string); !strings.HasPrefix(r, ref+"/messages/") {
				t.Errorf("operation %s: message %s is not one of its channel %s", name, r, ref)
			}
			s.deref(t, m)
		}
	}
	for _, c := range chans {
		if byChannel[c.address] != 1 {
			t.Errorf("channel %s has %d operations, want 1", c.address, byChannel[c.address])
		}
		payload, _ := s.flatten(t, c.message["payload"])
		props, _ := payload["properties"].(map[string]any)
		typ, _ := s.flatten(t, props["type"])
		if typ["const"] != string(c.typ) {
			t.Errorf("message %s on %s: payload type const is %v, want %s", c.messageID, c.address, typ["const"], c.typ)
		}
		if c.message["name"] != string(c.typ) {
			t.Errorf("message %s on %s: name %v, want %s", c.messageID, c.address, c.message["name"], c.typ)
		}
	}

	// The enums of the contract.
	enum := func(ref string) []string {
		v, err := s.pointer(ref)
		if err != nil {
			t.Fatal(err)
		}
		e := strs(v.(map[string]any)["enum"])
		slices.Sort(e)
		return e
	}
	var inputs, outputs, reasons []string
	for _, typ := range events.InputTypes {
		inputs = append(inputs, string(typ))
	}
	for typ := range outputTypes {
		outputs = append(outputs, string(typ))
	}
	for _, r := range append(slices.Clone(allReasons), events.ReasonIDReused, events.ReasonProcessFailed) {
		reasons = append(reasons, string(r))
	}
	for _, c := range []struct {
		ref  string
		want []string
	}{
		{"#/components/schemas/InputEnvelope/properties/type", inputs},
		{"#/components/schemas/OutputEnvelope/properties/type", outputs},
		{"#/components/schemas/DeadLetter/properties/reason", reasons},
		{"#/components/schemas/Kind", []string{string(events.KindCIG), string(events.KindContribution)}},
	} {
		slices.Sort(c.want)
		if got := enum(c.ref); !slices.Equal(got, c.want) {
			t.Errorf("%s enum is %v, want %v", c.ref, got, c.want)
		}
	}
}

// TestAsyncAPIExamples decodes every example of the document.
func TestAsyncAPIExamples(t *testing.T) {
	s := loadSpec(t)
	for _, c := range s.channels(t) {
		t.Run(string(c.typ), func(t *testing.T) {
			examples, _ := c.message["examples"].([]any)
			if len(examples) == 0 {
				t.Fatalf("message %s has no example", c.messageID)
			}
			for i, e := range examples {
				ex := e.(map[string]any)
				payload := jsonValue(t, ex["payload"])
				headers, _ := jsonValue(t, ex["headers"]).(map[string]any)
				raw, err := json.Marshal(payload)
				if err != nil {
					t.Fatal(err)
				}
				where := fmt.Sprintf("%s example %d (%v)", c.messageID, i, ex["name"])
				for _, problem := range s.validate(t, "payload", c.message["payload"], payload) {
					t.Errorf("%s does not match its schema: %s", where, problem)
				}
				for _, problem := range s.validate(t, "headers", c.message["headers"], headers) {
					t.Errorf("%s headers do not match their schema: %s", where, problem)
				}
				id, _ := payload.(map[string]any)["id"].(string)
				if headers["Nats-Msg-Id"] != id {
					t.Errorf("%s: header Nats-Msg-Id %v is not the id %q", where, headers["Nats-Msg-Id"], id)
				}
				file := filepath.Join("testdata", string(c.typ)+".json")
				if c.input {
					checkInputExample(t, where, c.typ, raw)
				} else {
					file = filepath.Join("testdata", "output", string(c.typ)+".json")
					checkOutputExample(t, where, c.typ, raw, headers)
				}
				if want := jsonFile(t, file); !reflect.DeepEqual(payload, want) {
					t.Errorf("%s is not the same as %s: copy the file into the example", where, file)
				}
			}
		})
	}
}

func checkInputExample(t *testing.T, where string, typ events.Type, raw []byte) {
	t.Helper()
	ev, err := events.Decode(raw, typ, testLimits())
	if err != nil {
		t.Errorf("%s: events.Decode: %v", where, err)
		return
	}
	if reflect.TypeOf(ev.Payload) != payloadTypes[typ] {
		t.Errorf("%s decodes to %T", where, ev.Payload)
	}
}

// strictUnmarshal decodes b into v, failing on unknown fields and trailing
// data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func checkOutputExample(t *testing.T, where string, typ events.Type, raw []byte, headers map[string]any) {
	t.Helper()
	var env events.Envelope
	if err := strictUnmarshal(raw, &env); err != nil {
		t.Errorf("%s: envelope: %v", where, err)
		return
	}
	if env.Type != typ || env.Source != "promemoria" || env.SpecVersion != events.SpecVersion || env.DataContentType != events.ContentType {
		t.Errorf("%s: envelope %+v: want type %s, source promemoria, specversion 1.0, datacontenttype application/json", where, env, typ)
	}
	if headers["Ce-Type"] != string(typ) {
		t.Errorf("%s: header Ce-Type %v, want %s", where, headers["Ce-Type"], typ)
	}
	data := reflect.New(outputTypes[typ])
	if err := strictUnmarshal(env.Data, data.Interface()); err != nil {
		t.Errorf("%s: data into %s: %v", where, outputTypes[typ], err)
		return
	}
	switch d := data.Interface().(type) {
	case *events.Reminder:
		seq := d.Sequence
		if typ == events.TypeReminderEscalation {
			seq = 1 // one escalation per gap
			if !d.Escalation {
				t.Errorf("%s: escalation is false", where)
			}
		}
		want := gap.ReminderID(gap.Identity{Kind: d.Kind, TenderID: d.TenderID, LotID: d.LotID, OperatorFiscalCode: d.OperatorFiscalCode}, typ, seq)
		if d.ReminderID != want || env.ID != want {
			t.Errorf("%s: reminder_id %q and id %q, want gap.ReminderID = %q", where, d.ReminderID, env.ID, want)
		}
		if typ == events.TypeReminderCIG && d.Kind != events.KindCIG || typ == events.TypeReminderContribution && d.Kind != events.KindContribution {
			t.Errorf("%s: kind %s on %s", where, d.Kind, typ)
		}
		if (d.Kind == events.KindContribution) != (d.OperatorFiscalCode != "") {
			t.Errorf("%s: a %s gap with operator_fiscal_code %q", where, d.Kind, d.OperatorFiscalCode)
		}
	case *events.Resolved:
		want := gap.ReminderID(gap.Identity{Kind: d.Kind, TenderID: d.TenderID, LotID: d.LotID, OperatorFiscalCode: d.OperatorFiscalCode}, typ, 1)
		if d.ReminderID != want || env.ID != want {
			t.Errorf("%s: reminder_id %q and id %q, want gap.ReminderID = %q", where, d.ReminderID, env.ID, want)
		}
	case *events.Advice:
		checkAdvice(t, where, env, d)
	case *events.Delivery:
		if env.ID != d.DeliveryID || !strings.HasPrefix(d.DeliveryID, "dlv-") {
			t.Errorf("%s: id %q and delivery_id %q, want the same dlv- id", where, env.ID, d.DeliveryID)
		}
		if (typ == events.TypeDeliveryFailed) != (d.Reason != "") {
			t.Errorf("%s: %s with reason %q", where, typ, d.Reason)
		}
	case *events.DeadLetter:
		if want := fmt.Sprintf("dl-%s-%d", d.Stream, d.Sequence); env.ID != want {
			t.Errorf("%s: id %q, want %q", where, env.ID, want)
		}
		// The dead-lettered input really fails with the reason and error given.
		sub := events.Subjects{Prefix: events.DefaultPrefix}
		_, err := events.Decode(d.Data, sub.TypeOf(d.Subject), testLimits())
		if err == nil || events.ReasonOf(err) != d.Reason || err.Error() != d.Error {
			t.Errorf("%s: the dead-lettered data decodes with error %v; the example says %s: %s", where, err, d.Reason, d.Error)
		}
	}
}

// adviceID is the advice id as README.md documents it: "adv-" and the first
// 15 bytes of SHA-256(tender_id 0x00, published_at and deadline, then for
// each outage in the order of data.outages: service 0x00, from and to; times
// as Unix nanoseconds in 8 bytes big-endian), base32 in lower case without
// padding.
func adviceID(d *events.Advice) string {
	h := sha256.New()
	h.Write([]byte(d.TenderID))
	h.Write([]byte{0})
	var b [8]byte
	for _, at := range []time.Time{d.PublishedAt, d.Deadline} {
		binary.BigEndian.PutUint64(b[:], uint64(at.UnixNano()))
		h.Write(b[:])
	}
	for _, o := range d.Outages {
		h.Write([]byte(o.Service))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(b[:], uint64(o.From.UnixNano()))
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(o.To.UnixNano()))
		h.Write(b[:])
	}
	sum := h.Sum(nil)
	return "adv-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// checkAdvice checks that an advice example tells a consistent story: its
// id, the outages and the overlap they give, the proposed deadline, the
// legal basis by the publication date, and that it was published after the
// outages ended and before the deadline.
func checkAdvice(t *testing.T, where string, env events.Envelope, d *events.Advice) {
	t.Helper()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	if want := adviceID(d); d.AdviceID != want || env.ID != want {
		t.Errorf("%s: advice_id %q and id %q, want %q (README.md, advice ids)", where, d.AdviceID, env.ID, want)
	}
	if d.Recipient.Email == "" || d.Recipient.Name == "" {
		t.Errorf("%s: the recipient (the RUP) has no name or e-mail: %+v", where, d.Recipient)
	}
	if !d.PublishedAt.Before(d.Deadline) {
		t.Errorf("%s: published_at %s is not before the deadline %s", where, d.PublishedAt, d.Deadline)
	}
	// The outages: sorted by from, then service; each over, each
	// overlapping the offer period, and none after the advice.
	var parts [][2]time.Time
	for i, o := range d.Outages {
		if !o.From.Before(o.To) {
			t.Errorf("%s: outages[%d] from %s is not before to %s", where, i, o.From, o.To)
		}
		if o.To.After(env.Time) {
			t.Errorf("%s: outages[%d] ends at %s, after the advice (%s): an advice counts outages that are over", where, i, o.To, env.Time)
		}
		if i > 0 {
			p := d.Outages[i-1]
			if o.From.Before(p.From) || o.From.Equal(p.From) && o.Service <= p.Service {
				t.Errorf("%s: outages[%d] (%s %s) is not after outages[%d] (%s %s): want them by from, then service", where, i, o.Service, o.From, i-1, p.Service, p.From)
			}
		}
		from, to := o.From, o.To
		if from.Before(d.PublishedAt) {
			from = d.PublishedAt
		}
		if to.After(d.Deadline) {
			to = d.Deadline
		}
		if !from.Before(to) {
			t.Errorf("%s: outages[%d] (%s %s to %s) does not overlap the offer period", where, i, o.Service, o.From, o.To)
			continue
		}
		parts = append(parts, [2]time.Time{from, to})
	}
	// The overlap is at most the union of the outages within the offer
	// period (a lot's CIG service counts only while the lot lacked its
	// CIG, which the advice does not say).
	slices.SortFunc(parts, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var union time.Duration
	for i := 0; i < len(parts); {
		cur := parts[i]
		for i++; i < len(parts) && !parts[i][0].After(cur[1]); i++ {
			if parts[i][1].After(cur[1]) {
				cur[1] = parts[i][1]
			}
		}
		union += cur[1].Sub(cur[0])
	}
	if d.OverlapSeconds <= 0 || d.OverlapSeconds > int64(union/time.Second) {
		t.Errorf("%s: overlap_seconds %d, want between 1 and %d (the union of the outages within the offer period)", where, d.OverlapSeconds, int64(union/time.Second))
	}
	// The proposed deadline: deadline + overlap, or the same time of a
	// later day if that falls on a closed day, never on a weekend.
	base := d.Deadline.Add(time.Duration(d.OverlapSeconds) * time.Second).In(rome)
	proposed := d.ProposedDeadline.In(rome)
	bh, bm, bs := base.Clock()
	ph, pm, ps := proposed.Clock()
	if proposed.Before(base) || bh != ph || bm != pm || bs != ps || proposed.Sub(base) > 10*24*time.Hour {
		t.Errorf("%s: proposed_deadline %s, want deadline + overlap_seconds = %s, or the same time of a working day after it", where, proposed, base)
	}
	if wd := proposed.Weekday(); wd == time.Saturday || wd == time.Sunday {
		t.Errorf("%s: proposed_deadline %s falls on a %s", where, proposed, wd)
	}
	basis := "art. 25, comma 2, d.lgs. 36/2023"
	if d.PublishedAt.Before(time.Date(2023, time.July, 1, 0, 0, 0, 0, rome)) {
		basis = "art. 79, comma 5-bis, d.lgs. 50/2016"
	}
	if d.LegalBasis != basis {
		t.Errorf("%s: legal_basis %q for a tender published on %s, want %q", where, d.LegalBasis, d.PublishedAt, basis)
	}
	if !env.Time.Before(d.Deadline) {
		t.Errorf("%s: published at %s, not before the deadline %s: an advice is only useful while the deadline is ahead", where, env.Time, d.Deadline)
	}
}

// validate checks v against the schema sch and returns the problems. It
// supports the keywords the document uses and reports any other.
func (s *spec) validate(t *testing.T, path string, sch any, v any) []string {
	t.Helper()
	m, _ := s.deref(t, sch)
	var out []string
	bad := func(format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kw := m[k]
		switch k {
		case "title", "description", "examples", "default", "$comment":
		case "allOf":
			for _, p := range kw.([]any) {
				out = append(out, s.validate(t, path, p, v)...)
			}
		case "type":
			if jt := jsonTypeOf(v); !slices.Contains(strs(kw), jt) && !(jt == "integer" && slices.Contains(strs(kw), "number")) {
				bad("is JSON %s, want %v", jt, kw)
			}
		case "const":
			if !reflect.DeepEqual(jsonValue(t, kw), v) {
				bad("is %v, want %v", v, kw)
			}
		case "enum":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return reflect.DeepEqual(jsonValue(t, e), v) }) {
				bad("%v is not one of %v", v, kw)
			}
		case "pattern":
			if str, ok := v.(string); ok && !regexp.MustCompile(kw.(string)).MatchString(str) {
				bad("%q does not match %s", str, kw)
			}
		case "minLength", "maxLength":
			if str, ok := v.(string); ok {
				n, lim := utf8.RuneCountInString(str), int(num(kw))
				if k == "minLength" && n < lim || k == "maxLength" && n > lim {
					bad("length %d breaks %s %d", n, k, lim)
				}
			}
		case "minItems", "maxItems":
			if arr, ok := v.([]any); ok {
				n, lim := len(arr), int(num(kw))
				if k == "minItems" && n < lim || k == "maxItems" && n > lim {
					bad("%d items break %s %d", n, k, lim)
				}
			}
		case "minimum", "maximum":
			if f, ok := v.(float64); ok {
				if k == "minimum" && f < num(kw) || k == "maximum" && f > num(kw) {
					bad("%v breaks %s %v", f, k, kw)
				}
			}
		case "format":
			if str, ok := v.(string); ok && kw == "date-time" {
				if _, err := time.Parse(time.RFC3339, str); err != nil {
					bad("%q is not an RFC 3339 date-time", str)
				}
			}
		case "contentEncoding":
			if str, ok := v.(string); ok && kw == "base64" {
				if _, err := base64.StdEncoding.DecodeString(str); err != nil {
					bad("not base64: %v", err)
				}
			}
		case "required":
			if obj, ok := v.(map[string]any); ok {
				for _, r := range strs(kw) {
					if _, ok := obj[r]; !ok {
						bad("required %q is missing", r)
					}
				}
			}
		case "properties", "additionalProperties":
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			props, _ := m["properties"].(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(obj)) {
				if ps, ok := props[name]; ok {
					if k == "properties" {
						out = append(out, s.validate(t, path+"."+name, ps, obj[name])...)
					}
				} else if k == "additionalProperties" {
					if kw == false {
						bad("property %q is not allowed", name)
					} else if _, ok := kw.(map[string]any); ok {
						out = append(out, s.validate(t, path+"."+name, kw, obj[name])...)
					}
				}
			}
		case "items":
			if arr, ok := v.([]any); ok {
				for i, e := range arr {
					out = append(out, s.validate(t, fmt.Sprintf("%s[%d]", path, i), kw, e)...)
				}
			}
		default:
			if !strings.HasPrefix(k, "x-") {
				t.Fatalf("%s: the test's validator does not know the keyword %q: teach it, or do without", path, k)
			}
		}
	}
	return out
}

func num(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("%v is not a number", v))
}

func jsonTypeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) || x > 1<<62 || x < -(1<<62) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonField is a field of a Go struct as encoding/json writes it.
type jsonField struct {
	name string
	typ  reflect.Type
	// always is true if the encoder always writes it (no omitempty or
	// omitzero).
	always bool
}

func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		o := strings.Split(opts, ",")
		out = append(out, jsonField{name: name, typ: f.Type, always: !slices.Contains(o, "omitempty") && !slices.Contains(o, "omitzero")})
	}
	return out
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	rawJSONType = reflect.TypeFor[json.RawMessage]()
	bytesType   = reflect.TypeFor[[]byte]()
)

func jsonTypeOfGo(t reflect.Type) string {
	switch {
	case t == timeType:
		return "string"
	case t == rawJSONType:
		return "object"
	case t == bytesType:
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}

// schemaUse is what the walk learnt about one object schema.
type schemaUse struct {
	where          []string
	goType         reflect.Type
	props          []string
	required       []string
	always         []string
	input, output  bool
	observed       map[string]bool // input: property -> removing it fails
	observedIn     map[string]string
	inputExamples  []string
	outputExamples []string
}

type schemaChecker struct {
	t    *testing.T
	s    *spec
	uses map[string]*schemaUse
	// data is the Go type of the data of the message being walked.
	data reflect.Type
}

func (c *schemaChecker) use(id string) *schemaUse {
	u, ok := c.uses[id]
	if !ok {
		u = &schemaUse{observed: map[string]bool{}, observedIn: map[string]string{}}
		c.uses[id] = u
	}
	return u
}

// compare checks schema sch (at path) against Go type typ.
func (c *schemaChecker) compare(path string, sch any, typ reflect.Type, input bool) {
	t := c.t
	flat, id := c.s.flatten(t, sch)
	if id == "" {
		id = path
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := jsonTypeOfGo(typ)
	if got := strs(flat["type"]); !slices.Contains(got, want) {
		t.Errorf("schema %s (%s): type %v, but Go type %s is JSON %s", path, id, got, typ, want)
	}
	switch {
	case typ == timeType:
		if flat["format"] != "date-time" {
			t.Errorf("schema %s (%s): Go type time.Time wants format date-time, got %v", path, id, flat["format"])
		}
	case typ == rawJSONType:
		if c.data != nil {
			c.compare(path, sch, c.data, input)
		}
	case typ == bytesType:
		if flat["contentEncoding"] != "base64" {
			t.Errorf("schema %s (%s): Go []byte is base64 in JSON: want contentEncoding base64", path, id)
		}
	case typ.Kind() == reflect.Struct:
		props, _ := flat["properties"].(map[string]any)
		fields := jsonFields(typ)
		var names, always []string
		for _, f := range fields {
			names = append(names, f.name)
			if f.always {
				always = append(always, f.name)
			}
		}
		schemaNames := slices.Sorted(maps.Keys(props))
		var missing, extra []string
		for _, n := range names {
			if !slices.Contains(schemaNames, n) {
				missing = append(missing, n)
			}
		}
		for _, n := range schemaNames {
			if !slices.Contains(names, n) {
				extra = append(extra, n)
			}
		}
		if len(missing) > 0 {
			t.Errorf("schema %s (%s) lacks properties %v that Go type %s has (json tags)", path, id, missing, typ)
		}
		if len(extra) > 0 {
			t.Errorf("schema %s (%s) has properties %v that Go type %s does not have", path, id, extra, typ)
		}
		required := strs(flat["required"])
		for _, r := range required {
			if !slices.Contains(schemaNames, r) {
				t.Errorf("schema %s (%s) requires %q, which is not one of its properties", path, id, r)
			}
		}
		u := c.use(id)
		if u.goType != nil && u.goType != typ {
			t.Errorf("schema %s is used for Go types %s and %s", id, u.goType, typ)
		}
		u.goType, u.props, u.required, u.always = typ, schemaNames, required, always
		u.where = append(u.where, path)
		if input {
			u.input = true
		} else {
			u.output = true
		}
		for _, f := range fields {
			if ps, ok := props[f.name]; ok {
				c.compare(path+"."+f.name, ps, f.typ, input)
			}
		}
	case typ.Kind() == reflect.Slice:
		items, ok := flat["items"]
		if !ok {
			t.Errorf("schema %s (%s): array without items", path, id)
			return
		}
		c.compare(path+"[]", items, typ.Elem(), input)
	case typ.Kind() == reflect.Map:
		ap, ok := flat["additionalProperties"].(map[string]any)
		if !ok {
			t.Errorf("schema %s (%s): Go map %s wants additionalProperties with the value schema", path, id, typ)
			return
		}
		c.compare(path+"{}", ap, typ.Elem(), input)
	}
}

// removals removes, one at a time, every property the schema knows from the
// input example (at the JSON path at) and records whether Decode then fails.
func (c *schemaChecker) removals(where string, typ events.Type, example any, at []any, sch any) {
	t := c.t
	flat, id := c.s.flatten(t, sch)
	if id == "" {
		id = where + pathString(at)
	}
	node := valueAt(example, at)
	if arr, ok := node.([]any); ok {
		if items, ok := flat["items"]; ok {
			for i := range arr {
				c.removals(where, typ, example, append(slices.Clone(at), i), items)
			}
		}
		return
	}
	obj, ok := node.(map[string]any)
	if !ok {
		return
	}
	props, _ := flat["properties"].(map[string]any)
	u := c.use(id)
	u.inputExamples = append(u.inputExamples, where+pathString(at))
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if _, ok := obj[name]; !ok {
			continue
		}
		raw, err := json.Marshal(without(example, at, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = events.Decode(raw, typ, testLimits())
		required := err != nil
		field := where + pathString(append(slices.Clone(at), name))
		if err != nil && events.ReasonOf(err) != events.ReasonMissingField {
			t.Errorf("removing %s makes Decode fail with %v, want success or missing_field", field, err)
		}
		if prev, ok := u.observed[name]; ok && prev != required {
			t.Errorf("schema %s: removing %q fails in %s but not in %s (or the reverse)", id, name, field, u.observedIn[name])
		}
		u.observed[name], u.observedIn[name] = required, field
		c.removals(where, typ, example, append(slices.Clone(at), name), props[name])
	}
}

func pathString(at []any) string {
	var b strings.Builder
	for _, p := range at {
		if i, ok := p.(int); ok {
			fmt.Fprintf(&b, "[%d]", i)
		} else {
			fmt.Fprintf(&b, ".%s", p)
		}
	}
	return b.String()
}

func valueAt(v any, at []any) any {
	for _, p := range at {
		switch x := v.(type) {
		case map[string]any:
			v = x[p.(string)]
		case []any:
			v = x[p.(int)]
		}
	}
	return v
}

// without returns a deep copy of v without the key name of the object at.
func without(v any, at []any, name string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if len(at) == 0 && k == name {
				continue
			}
			if len(at) > 0 && at[0] == k {
				e = without(e, at[1:], name)
			}
			out[k] = e
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			if len(at) > 0 && at[0] == i {
				e = without(e, at[1:], name)
			}
			out[i] = e
		}
		return out
	}
	return v
}

// TestAsyncAPISchemas checks each message's schemas against the Go types:
// property names and JSON types, and required fields.
func TestAsyncAPISchemas(t *testing.T) {
	s := loadSpec(t)
	c := &schemaChecker{t: t, s: s, uses: map[string]*schemaUse{}}
	for _, ch := range s.channels(t) {
		c.data = dataType(ch.typ)
		if c.data == nil {
			continue // reported by TestAsyncAPIChannels
		}
		c.compare(string(ch.typ), ch.message["payload"], reflect.TypeFor[events.Envelope](), ch.input)
		if !ch.input {
			continue
		}
		examples, _ := ch.message["examples"].([]any)
		for i, e := range examples {
			payload := jsonValue(t, e.(map[string]any)["payload"])
			c.removals(fmt.Sprintf("%s example %d", ch.typ, i), ch.typ, payload, nil, ch.message["payload"])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.uses)) {
		u := c.uses[id]
		if u.goType == nil {
			continue // an object met only in an example
		}
		name := fmt.Sprintf("schema %s (Go %s, at %s)", id, u.goType, strings.Join(slices.Compact(u.where), ", "))
		if u.input {
			var want []string
			for _, p := range u.props {
				if u.observed[p] {
					want = append(want, p)
				}
			}
			for _, r := range u.required {
				if _, seen := u.observed[r]; !seen {
					want = append(want, r) // reported below: a valid example lacks it
					t.Errorf("%s requires %q, but a valid example (%v) decodes without it", name, r, u.inputExamples)
				}
			}
			checkRequired(t, name, "Decode requires (removing it from the valid example fails with missing_field)", u.required, want)
		}
		if u.output {
			for _, r := range u.required {
				if !slices.Contains(u.always, r) {
					t.Errorf("%s requires %q, but the Go encoder omits it when empty (omitempty/omitzero)", name, r)
				}
			}
			if !u.input {
				checkRequired(t, name, "the encoder always writes (json tag without omitempty/omitzero)", u.required, u.always)
			}
		}
	}
}

func checkRequired(t *testing.T, name, rule string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		var add, drop []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				add = append(add, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				drop = append(drop, g)
			}
		}
		t.Errorf("%s: required is %v, want %v, the fields %s: add %v, remove %v", name, got, want, rule, add, drop)
	}
}

// schemaCannotSay lists invalid testdata whose rule JSON Schema cannot
// express, so the schema accepts them although Decode does not.
var schemaCannotSay = map[string]string{
	"invalid_field.published-duplicate-lot.json": "lot ids unique within a tender",
	"invalid_cig.simog-v1-check.json":            "CIG check digits",
	"invalid_cig.simog-v2-check.json":            "CIG check digits",
	"invalid_cig.smart-cig-check.json":           "CIG check digits",
	"invalid_cig.all-zero.json":                  "CIG check digits",
	"invalid_cig.letter-beyond-u.json":           "CIG check digits",
	"bad_time.before-2000.json":                  "times not before 2000",
	"bad_time.published-at-before-2000.json":     "times not before 2000",
	"bad_time.far-future.json":                   "times relative to the clock",
	"bad_time.at-far-future.json":                "times relative to the clock",
	"bad_time.offer-deadline-far-future.json":    "times relative to the clock",
	"bad_time.regularise-by-far-future.json":     "times relative to the clock",
	"too_deep.extension-attribute.json":          "nesting depth of unknown attributes",
	"too_deep.unknown-data-field.json":           "nesting depth of unknown fields",
}

// TestAsyncAPIRejectsInvalid checks that the schemas are as strict as
// Decode wherever JSON Schema can say the rule.
func TestAsyncAPIRejectsInvalid(t *testing.T) {
	s := loadSpec(t)
	payloads := map[events.Type]any{}
	for _, ch := range s.channels(t) {
		payloads[ch.typ] = ch.message["payload"]
	}
	files, err := filepath.Glob("testdata/invalid/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		reason, _, _ := strings.Cut(name, ".")
		var v any
		if json.Unmarshal(readFile(t, f), &v) != nil || reason == string(events.ReasonInvalidUTF8) {
			continue // not JSON, or JSON only after replacing bytes: no schema can see it
		}
		t.Run(name, func(t *testing.T) {
			sch := any(map[string]any{"$ref": "#/components/schemas/InputEnvelope"})
			if obj, ok := v.(map[string]any); ok {
				if typ, _ := obj["type"].(string); events.IsInput(events.Type(typ)) {
					sch = payloads[events.Type(typ)]
				}
			}
			problems := s.validate(t, "payload", sch, v)
			why, cannot := schemaCannotSay[name]
			switch {
			case cannot && len(problems) > 0:
				t.Errorf("the schema now rejects it (%v): remove it from schemaCannotSay (%s)", problems, why)
			case !cannot && len(problems) == 0:
				t.Errorf("Decode rejects it with %s, but the schema accepts it: tighten the schema, or list it in schemaCannotSay", reason)
			}
		})
	}
	for name := range schemaCannotSay {
		if _, err := os.Stat(filepath.Join("testdata/invalid", name)); err != nil {
			t.Errorf("schemaCannotSay names %s, which does not exist", name)
		}
	}
}

// TestREADMEExamples checks that README.md shows every example file as it
// is and names every reason.
func TestREADMEExamples(t *testing.T) {
	readme := string(readFile(t, "README.md"))
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := filepath.Glob("testdata/output/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, out...) {
		if body := strings.TrimSpace(string(readFile(t, f))); !strings.Contains(readme, body) {
			t.Errorf("README.md does not show %s as it is: copy the file into a json code block", f)
		}
	}
	for _, r := range append(slices.Clone(allReasons), events.ReasonIDReused, events.ReasonProcessFailed) {
		if !strings.Contains(readme, "`"+string(r)+"`") {
			t.Errorf("README.md does not document the reason `%s`", r)
		}
	}
	types := slices.Clone(events.InputTypes)
	for typ := range outputTypes {
		types = append(types, typ)
	}
	for _, typ := range types {
		if !strings.Contains(readme, "`"+events.DefaultPrefix+"."+string(typ)+"`") {
			t.Errorf("README.md does not document the subject `%s.%s`", events.DefaultPrefix, typ)
		}
	}
}
