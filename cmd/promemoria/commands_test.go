package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

func noEnv(string) string { return "" }

// runCmd runs the command line in process and returns its exit code,
// standard output and standard error.
func runCmd(getenv func(string) string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

// startApp runs the whole service on an embedded server with a TCP
// listener and the HTTP endpoints, both on free ports.
func startApp(t *testing.T) *app.App {
	t.Helper()
	cfg, err := config.Load("serve", []string{
		"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--settle", "1s", "--repeat-interval", "1h",
		// Reminders go at any time: a test must not depend on the hour it runs at.
		"--office-hours", "always",
	}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg, zerolog.Nop(), app.Options{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return a
}

// waitUntil polls cond until it holds or fails the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tenderJSON(id string, deadline time.Time) string {
	return fmt.Sprintf(`{"tender_id": %q, "title": "Fornitura urgente", "authority": {"fiscal_code": "80001230125", "name": "Comune di Valfiorita"},
 "rup": {"name": "Laura Bianchi", "email": "rup@comune.example"}, "published_at": %q, "offer_deadline": %q,
 "lots": [{"lot_id": "L1", "base_amount_cents": 4500000000}]}`, id, time.Now().Format(time.RFC3339), deadline.Format(time.RFC3339))
}

// pendingJSON runs "pending --json" with extra flags and decodes it.
func pendingJSON(t *testing.T, url string, flags ...string) []worker.PendingGap {
	t.Helper()
	code, out, errOut := runCmd(noEnv, append([]string{"pending", "--json", "--nats-url", url}, flags...)...)
	if code != 0 {
		t.Fatalf("pending: exit %d: %s", code, errOut)
	}
	var resp struct {
		Pending []worker.PendingGap `json:"pending"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("pending --json: %v\n%s", err, out)
	}
	return resp.Pending
}

func streamMsgs(t *testing.T, url, stream string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"publish", "--help"}, {"pending", "-h"}, {"services", "--help"}, {"demo", "--help"}, {"probe", "--help"}, {"notify", "--help"},
	} {
		code, out, errOut := runCmd(noEnv, args...)
		if code != 0 || !strings.Contains(out, "Usage") {
			t.Errorf("%v: exit %d, want 0 with usage on stdout; stdout %q stderr %q", args, code, out, errOut)
		}
	}
	if code, _, _ := runCmd(noEnv, "serve", "--help"); code != 0 {
		t.Errorf("serve --help: exit %d, want 0", code)
	}
	if code, out, _ := runCmd(noEnv, "--version"); code != 0 || !strings.HasPrefix(out, "promemoria ") {
		t.Errorf("--version: exit %d, output %q", code, out)
	}
	// A secret from the environment is never shown by --help.
	_, out, _ := runCmd(func(k string) string {
		if k == "PROMEMORIA_NATS_PASSWORD" {
			return "s3cr3t-pw"
		}
		return ""
	}, "pending", "--help")
	if strings.Contains(out, "s3cr3t-pw") {
		t.Errorf("pending --help shows the password from the environment:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "down.json", `{}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"publish"}, "want TYPE"},
		{[]string{"publish", "portal.sideways", file}, `unknown_type: type: "portal.sideways" is not an input type`},
		{[]string{"publish", "reminder.cig", file}, "unknown_type"},
		{[]string{"publish", "portal.down", file, "extra"}, "want TYPE"},
		{[]string{"publish", "--time", "yesterday", "portal.down", file}, "--time"},
		{[]string{"publish", "--subject-prefix", "a..b", "portal.down", file}, "--subject-prefix"},
		{[]string{"publish", "--bogus", "portal.down"}, "bogus"},
		{[]string{"pending", "--kind", "fee"}, `--kind "fee"`},
		{[]string{"pending", "extra"}, "unexpected argument"},
		{[]string{"services", "--json", "extra"}, "unexpected argument"},
		{[]string{"demo", "--speed", "0"}, "--speed"},
		{[]string{"demo", "--speed", "100"}, "--speed"},
		{[]string{"demo", "now"}, "unexpected argument"},
		{[]string{"serve", "--settle", "soon"}, "settle"},
		{[]string{"notify"}, "no receiver"},
		{[]string{"notify", "--smtp-url", "smtp://mail.example.it"}, "smtp_from"},
		{[]string{"notify", "--webhook-url", "https://x.example/h", "--webhook-secret", "short"}, "webhook_secret"},
	} {
		code, _, errOut := runCmd(noEnv, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestClientFailures(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "down.json", `{"services": ["pcp"]}`)
	// Nothing listens on port 1.
	code, _, errOut := runCmd(noEnv, "publish", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1s", "portal.down", file)
	if code != 1 || !strings.Contains(errOut, "connect to NATS nats://127.0.0.1:1") {
		t.Errorf("publish to nowhere: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(noEnv, "pending", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "connect to NATS") {
		t.Errorf("pending to nowhere: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(noEnv, "publish", "--nats-url", "nats://127.0.0.1:1", "portal.down", filepath.Join(t.TempDir(), "missing.json"))
	if code != 1 || !strings.Contains(errOut, "missing.json") {
		t.Errorf("publish of a missing file: exit %d, stderr %q", code, errOut)
	}

	// A NATS server on which promemoria never ran.
	srv := natstest.Start(t)
	code, _, errOut = runCmd(noEnv, "pending", "--nats-url", srv.ClientURL())
	if code != 1 || !strings.Contains(errOut, "bucket promemoria_state not found") {
		t.Errorf("pending without promemoria: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(noEnv, "publish", "--nats-url", srv.ClientURL(), "portal.down", file)
	if code != 1 || !strings.Contains(errOut, "no JetStream stream stores this subject") {
		t.Errorf("publish without promemoria: exit %d, stderr %q", code, errOut)
	}
}

// TestPublishPendingServices publishes events with the CLI to a running
// promemoria and reads its state back with pending and services.
func TestPublishPendingServices(t *testing.T) {
	a := startApp(t)
	url := a.ClientURL()
	env := func(k string) string {
		if k == "NATS_URL" {
			return url
		}
		return ""
	}

	// portal.down from a file, the URL from NATS_URL.
	down := writeFile(t, "down.json", `{"services": ["pcp"], "notice": "PCP sospesa per migrazione cloud"}`)
	code, out, errOut := runCmd(env, "publish", "portal.down", down, "--id", "down-1", "--source", "test")
	if code != 0 || !regexp.MustCompile(`published portal\.down id down-1 source test: stream PROMEMORIA_EVENTS sequence 1\n`).MatchString(out) {
		t.Fatalf("publish portal.down: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The same id again is one event: the stream says so.
	code, out, _ = runCmd(env, "publish", "portal.down", down, "--id", "down-1", "--source", "test")
	if code != 0 || !strings.Contains(out, "sequence 1\n") || !strings.Contains(out, "not stored again") {
		t.Errorf("publish of a duplicate id: exit %d, stdout %q", code, out)
	}
	waitUntil(t, "services to show pcp down", 10*time.Second, func() bool {
		_, out, _ := runCmd(env, "services", "--json")
		return strings.Contains(out, `"name": "pcp",`+"\n"+`      "up": false`)
	})

	// tender.published on standard input, flags after the arguments.
	stdin = strings.NewReader(tenderJSON("T-1", time.Now().Add(10*24*time.Hour)))
	defer func() { stdin = os.Stdin }()
	code, out, errOut = runCmd(noEnv, "publish", "tender.published", "-", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "published tender.published id ") || !strings.Contains(out, "source promemoria-cli") {
		t.Fatalf("publish tender.published: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	var gaps []worker.PendingGap
	waitUntil(t, "the gap to be pending", 10*time.Second, func() bool {
		gaps = pendingJSON(t, url)
		return len(gaps) == 1
	})
	g := gaps[0]
	if g.TenderID != "T-1" || g.LotID != "L1" || g.Kind != events.KindCIG || g.Service != "pcp" ||
		g.State != worker.PendingServiceDown || g.RemindersSent != 0 || g.Deadline.IsZero() || g.Recipient.Email != "rup@comune.example" {
		t.Errorf("pending gap = %+v", g)
	}
	// Filters.
	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{[]string{"--service", "pcp"}, 1}, {[]string{"--service", "smartcig"}, 0},
		{[]string{"--tender", "T-1", "--kind", "cig"}, 1}, {[]string{"--tender", "T-2"}, 0},
		{[]string{"--kind", "contribution"}, 0},
	} {
		if got := len(pendingJSON(t, url, tc.flags...)); got != tc.want {
			t.Errorf("pending %v: %d gaps, want %d", tc.flags, got, tc.want)
		}
	}
	// The table.
	code, out, _ = runCmd(env, "pending")
	if code != 0 || !regexp.MustCompile(`(?m)^TENDER +LOT +KIND +SERVICE +OPERATOR +SENT +NEXT +DEADLINE +STATE\nT-1 +L1 +cig +pcp +- +0 +.*pcp down$`).MatchString(out) {
		t.Errorf("pending table: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(env, "pending", "--kind", "contribution")
	if code != 0 || out != "no open gaps\n" {
		t.Errorf("pending --kind contribution: exit %d, %q", code, out)
	}
	code, out, _ = runCmd(env, "services")
	if code != 0 || !regexp.MustCompile(`(?m)^pcp +DOWN +\d{4}-\d\d-\d\d .* ongoing +1 +1$`).MatchString(out) {
		t.Errorf("services table: exit %d\n%s", code, out)
	}

	// Invalid events are refused with the worker's reason, and nothing is
	// published.
	before := streamMsgs(t, url, worker.StreamEvents)
	badCIG := `{"tender_id": "T-1", "lot_id": "L1", "cig": "B00012EADC"}`
	for _, tc := range []struct {
		typ, data, want string
	}{
		{"tender.cig_assigned", badCIG, "invalid_cig: data.cig: invalid CIG"},
		{"tender.published", `{}`, "missing_field: data.tender_id: required"},
		{"bid.admitted_with_reserve", `{"tender_id": "T-1", "lot_id": "L1", "operator": {"fiscal_code": "X", "email": "nope"}}`, "invalid_field: data.operator.email"},
		{"portal.up", `{"services": ["pcp"`, "not_json: data"},
		{"portal.up", `["pcp"]`, "invalid_field: data: must be a JSON object"},
		{"portal.up", ``, "missing_field: data"},
	} {
		code, out, errOut := runCmd(env, "publish", tc.typ, writeFile(t, "bad.json", tc.data))
		if code != 1 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "nothing published") || out != "" {
			t.Errorf("publish %s %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.typ, tc.data, code, out, errOut, tc.want)
		}
	}
	big := writeFile(t, "big.json", `{"services": ["pcp"], "notice": "`+strings.Repeat("x", 2000)+`"}`)
	if code, _, errOut := runCmd(env, "publish", "--max-event-bytes", "1024", "portal.up", big); code != 1 || !strings.Contains(errOut, "oversized") {
		t.Errorf("publish of an oversized event: exit %d, stderr %q", code, errOut)
	}
	if after := streamMsgs(t, url, worker.StreamEvents); after != before {
		t.Errorf("refused events reached the stream: %d messages before, %d after", before, after)
	}
	// The reason is the one the worker dead-letters the same event with.
	_, _, cliErr := runCmd(env, "publish", "tender.cig_assigned", writeFile(t, "bad.json", badCIG))
	dl := deadLetterOf(t, url, "tender.cig_assigned", badCIG)
	if !strings.Contains(cliErr, dl.Error) {
		t.Errorf("publish says %q, the worker dead-letters with %q", cliErr, dl.Error)
	}

	// A valid CIG closes the gap.
	code, _, errOut = runCmd(env, "publish", "tender.cig_assigned", writeFile(t, "cig.json", `{"tender_id": "T-1", "lot_id": "L1", "cig": "B00012EADB"}`))
	if code != 0 {
		t.Fatalf("publish cig_assigned: exit %d, %s", code, errOut)
	}
	waitUntil(t, "the gap to close", 10*time.Second, func() bool { return len(pendingJSON(t, url)) == 0 })
}

// deadLetterOf publishes an event bypassing the CLI's checks and returns
// the dead letter the worker makes of it.
func deadLetterOf(t *testing.T, url string, typ events.Type, data string) events.DeadLetter {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, worker.StreamOutput, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"procurement.deadletter"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: "raw-1", Source: "test", Type: typ,
		Time: time.Now(), DataContentType: events.ContentType, Data: json.RawMessage(data)})
	if _, err := publishRaw(ctx, js, "procurement."+string(typ), "raw-1", typ, body); err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	var env events.Envelope
	var dl events.DeadLetter
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &dl); err != nil {
		t.Fatal(err)
	}
	return dl
}

// TestV1 reads /v1/pending and /v1/services through the real HTTP listener.
func TestV1(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	url := a.ClientURL()
	if code, _, errOut := runCmd(noEnv, "publish", "--nats-url", url, "portal.down", writeFile(t, "d.json", `{"services": ["pcp", "smartcig"]}`)); code != 0 {
		t.Fatal(errOut)
	}
	waitUntil(t, "services down", 10*time.Second, func() bool {
		svcs, err := worker.Services(context.Background(), a.Worker().State())
		return err == nil && len(svcs) == 2 && !svcs[0].Up
	})
	for _, id := range []string{"T-1", "T-2"} {
		if code, _, errOut := runCmd(noEnv, "publish", "--nats-url", url, "tender.published", writeFile(t, "t.json", tenderJSON(id, time.Now().Add(48*time.Hour+time.Duration(len(id))*time.Hour)))); code != 0 {
			t.Fatal(errOut)
		}
	}
	base := "http://" + a.HTTPAddr()
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusNotFound && ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusNotFound {
			t.Fatalf("GET %s: 404 %s (is a.registerV1(mux) wired in app/http.go?)", path, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
		return resp.StatusCode
	}
	var pending struct {
		Pending []worker.PendingGap `json:"pending"`
	}
	waitUntil(t, "two pending gaps over HTTP", 10*time.Second, func() bool {
		return get("/v1/pending", &pending) == 200 && len(pending.Pending) == 2
	})
	if p := pending.Pending; p[0].TenderID != "T-1" || p[1].TenderID != "T-2" || p[0].Service != "pcp" || p[0].State != worker.PendingServiceDown {
		t.Errorf("/v1/pending = %+v", p)
	}
	if code := get("/v1/pending?tender_id=T-2&kind=cig&service=pcp", &pending); code != 200 || len(pending.Pending) != 1 || pending.Pending[0].TenderID != "T-2" {
		t.Errorf("/v1/pending filtered: %d %+v", code, pending.Pending)
	}
	if code := get("/v1/pending?kind=contribution", &pending); code != 200 || pending.Pending == nil || len(pending.Pending) != 0 {
		t.Errorf("/v1/pending?kind=contribution: %d %+v (want an empty list, not null)", code, pending.Pending)
	}
	var e struct {
		Error string `json:"error"`
	}
	if code := get("/v1/pending?kind=fee", &e); code != 400 || !strings.Contains(e.Error, `kind "fee"`) {
		t.Errorf("/v1/pending?kind=fee: %d %q", code, e.Error)
	}
	if code := get("/v1/pending?tender=T-1", &e); code != 400 || !strings.Contains(e.Error, `"tender"`) {
		t.Errorf("/v1/pending?tender=: %d %q", code, e.Error)
	}
	if code := get("/v1/pending?all=maybe", &e); code != 400 || !strings.Contains(e.Error, `all="maybe"`) {
		t.Errorf("/v1/pending?all=maybe: %d %q", code, e.Error)
	}
	if code := get("/v1/pending?all=true", &pending); code != 200 || len(pending.Pending) != 2 {
		t.Errorf("/v1/pending?all=true: %d %+v", code, pending.Pending)
	}
	for _, g := range pending.Pending {
		if len(g.WaitingFor) != 1 || g.WaitingFor[0] != "pcp" {
			t.Errorf("/v1/pending: %s waits for %v, want [pcp]", g.TenderID, g.WaitingFor)
		}
	}
	var services struct {
		Services []worker.ServiceStatus `json:"services"`
	}
	if code := get("/v1/services", &services); code != 200 || len(services.Services) != 2 {
		t.Fatalf("/v1/services: %d %+v", code, services.Services)
	}
	if s := services.Services[0]; s.Name != "pcp" || s.Up || s.DownSince.IsZero() || s.Outages != 1 || s.OpenGaps != 2 || s.LastOutage == nil || !s.LastOutage.To.IsZero() {
		t.Errorf("/v1/services pcp = %+v", s)
	}
	if s := services.Services[1]; s.Name != "smartcig" || s.Up || s.OpenGaps != 0 {
		t.Errorf("/v1/services smartcig = %+v", s)
	}
	resp, err := http.Post(base+"/v1/pending", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/pending: %d", resp.StatusCode)
	}
}

// TestDemo runs the demo for real, compressed, and checks the story.
func TestDemo(t *testing.T) {
	t.Parallel()
	start := time.Now()
	code, out, errOut := runCmd(noEnv, "demo", "--speed", "3")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstderr: %s\nstdout:\n%s", code, errOut, out)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("demo took %s", d)
	}
	at := func(s string) int {
		i := strings.Index(out, s)
		if i < 0 {
			t.Errorf("demo output lacks %q", s)
		}
		return i
	}
	escalation := at("reminder.escalation  ASP-2021-0112 lot 1  -> Dott. Marco Rossi")
	firstContribution := at("reminder.contribution #1")
	firstResolved := at("reminder.resolved")
	firstCIG := at("reminder.cig #1")
	advice := at("advice.deadline_extension  ASP-2021-0112")
	repeat := at("reminder.cig #2")
	deadLetter := at("deadletter  tender.cig_assigned refused: invalid_cig")
	waitingPayment := at("reminder.contribution #1  ASP-2021-0112 lot 1 operator 04567891230")
	if !(escalation < firstContribution && firstContribution < firstResolved && firstResolved < firstCIG &&
		firstCIG < repeat && advice < deadLetter && repeat < deadLetter && deadLetter < waitingPayment) {
		t.Errorf("demo events out of order (escalation %d, contribution %d, resolved %d, cig %d, advice %d, repeat %d, dead letter %d, payment after the CIG %d):\n%s",
			escalation, firstContribution, firstResolved, firstCIG, advice, repeat, deadLetter, waitingPayment, out)
	}
	for _, s := range []string{
		"-> Edilstrade S.r.l. <gare@pec.edilstrade.example>, cc Arch. Giulia Verdi",
		"Spett.le Edilstrade S.r.l.,",
		"versare il contributo di 35,00 €",
		"06/05/2021 alle ore 12:00",
		"art. 79, comma 5-bis, d.lgs. 50/2016",
		"$ promemoria pending", "simog down, escalated", "waiting for the lot's CIG",
		"Open gaps left: 0.",
	} {
		at(s)
	}
	for _, s := range []string{"33,00 €", "(payments)", "Gentile Edilstrade"} {
		if strings.Contains(out, s) {
			t.Errorf("demo output contains %q:\n%s", s, out)
		}
	}
	if n := strings.Count(out, "  reminder.resolved  "); n != 5 {
		t.Errorf("%d resolved reminders, want 5:\n%s", n, out)
	}
	if !regexp.MustCompile(`Done in \d+\.\ds: \d+ reminders \(\d+ contribution, [4-9] cig, 1 escalation, 5 resolved\), 2 advices and 1 dead letter\.`).MatchString(out) {
		t.Errorf("demo summary missing or wrong:\n%s", out)
	}
	if i := strings.LastIndex(out, "reminder."); i > at("Done in") {
		t.Errorf("a reminder was printed after the summary:\n%s", out)
	}
}

// TestProbeOnce checks the configured probes against real HTTP servers.
func TestProbeOnce(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "operativo") }))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "manutenzione", http.StatusServiceUnavailable)
	}))
	defer down.Close()

	code, out, errOut := runCmd(noEnv, "probe", "--once", "--probe", "pcp="+up.URL, "--probe", "payments="+down.URL)
	if code != 1 {
		t.Fatalf("one probe failing: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, s := range []string{"SERVICE", "pcp", up.URL, "200", "up", "payments", "503", "DOWN: HTTP 503"} {
		if !strings.Contains(out, s) {
			t.Errorf("probe --once output lacks %q:\n%s", s, out)
		}
	}
	env := func(k string) string {
		if k == "PROMEMORIA_PROBES" {
			return "pcp=" + up.URL
		}
		return ""
	}
	if code, out, errOut := runCmd(env, "probe", "--once"); code != 0 || !strings.Contains(out, up.URL) {
		t.Errorf("every probe passing: exit %d, want 0\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd(noEnv, "probe", "--once"); code != 2 || !strings.Contains(errOut, "no probes configured") {
		t.Errorf("no probes: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(noEnv, "probe", "--probe", "pcp="+up.URL); code != 2 || !strings.Contains(errOut, "--once") {
		t.Errorf("without --once: exit %d %q", code, errOut)
	}
}
