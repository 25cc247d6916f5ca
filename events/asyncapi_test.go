package events_test

import (
	"bytes"
	"encoding/base64"
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
	events.TypeDeadLetter:           reflect.TypeFor[events.DeadLetter](),
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
	for _, typ := range events.InputTypes {
		if !strings.Contains(readme, "`"+events.DefaultPrefix+"."+string(typ)+"`") {
			t.Errorf("README.md does not document the subject `%s.%s`", events.DefaultPrefix, typ)
		}
	}
}
