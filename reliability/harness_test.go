package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/worker"
)

// The binaries every test runs, built once by TestMain.
var (
	promemoriaBin string
	natsServerBin string
)

// TestMain builds the promemoria service and the nats-server into a
// temporary directory, runs the tests and removes the directory.
// PROMEMORIA_RELIABILITY_RACE=1 builds the service with the race detector.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "promemoria-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	promemoriaBin = filepath.Join(dir, "promemoria")
	natsServerBin = filepath.Join(dir, "nats-server")
	var race []string
	if os.Getenv("PROMEMORIA_RELIABILITY_RACE") != "" {
		race = []string{"-race"}
	}
	for _, b := range []struct {
		out, pkg string
		flags    []string
	}{
		{promemoriaBin, "github.com/promemoria/promemoria/cmd/promemoria", race},
		{natsServerBin, "github.com/nats-io/nats-server/v2", nil},
	} {
		args := append(append([]string{"build"}, b.flags...), "-o", b.out, b.pkg)
		cmd := exec.Command(goTool(), args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: go build %s: %v\n", b.pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before.
func freePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsUsed[p] {
			portsUsed[p] = true
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// proc is a child process that can be started again after it exits.
type proc struct {
	t       testing.TB
	name    string
	bin     string
	args    []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	offset int64 // log size when the current run started
	starts int
}

func newProc(t testing.TB, name, bin string, args []string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL, 10*time.Second)
		if t.Failed() {
			p.dumpLog()
		}
		if dir := os.Getenv("PROMEMORIA_RELIABILITY_LOGS"); dir != "" {
			// Keep every process's log for a post-mortem.
			if b, err := os.ReadFile(p.logPath); err == nil {
				name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + p.name + ".log"
				_ = os.MkdirAll(dir, 0o755)
				_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
		}
	})
	return p
}

// launch starts the process; it must not be running.
func (p *proc) launch() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		p.t.Fatalf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	st, _ := f.Stat()
	p.offset = st.Size()
	p.starts++
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: a crashed test leaves no orphan behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive.
func (p *proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// signal sends sig and waits up to wait for the process to exit; it
// escalates to SIGKILL if it does not.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(wait):
	}
	p.t.Logf("%s did not exit %s after %s: SIGKILL", p.name, wait, sig)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pause freezes the process (SIGSTOP) for d, then lets it go on (SIGCONT):
// a stalled broker whose connections stay open.
func (p *proc) Pause(d time.Duration) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	_ = cmd.Process.Signal(syscall.SIGCONT)
}

// logSince returns what the current run has written so far.
func (p *proc) logSince() []byte {
	p.mu.Lock()
	off := p.offset
	p.mu.Unlock()
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	return b[off:]
}

// dumpLog logs the warnings and errors of the process (and the last lines).
func (p *proc) dumpLog() {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "Error trying to connect to route") {
			continue
		}
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, "[ERR]") || strings.Contains(l, "[WRN]") || strings.Contains(l, "panic") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 40 {
		keep = append(keep[:20], append([]string{fmt.Sprintf("… %d more …", len(keep)-40)}, keep[len(keep)-20:]...)...)
	}
	tail := lines
	if len(tail) > 15 {
		tail = tail[len(tail)-15:]
	}
	p.t.Logf("--- %s (%d starts): warnings and errors:\n%s\n--- last lines:\n%s", p.name, p.starts, strings.Join(keep, "\n"), strings.Join(tail, "\n"))
}

// ---------------------------------------------------------------- nats-server

// natsNode is a nats-server process with JetStream.
type natsNode struct {
	*proc
	Name       string
	Port, Mon  int
	Cluster    int
	Dir        string
	clusterURL []string
}

// startNATS starts a single nats-server with JetStream on free ports.
func startNATS(t testing.TB, name string) *natsNode {
	n := newNATSNode(t, name, nil)
	n.Start()
	return n
}

// startCluster starts three clustered nats-servers and waits until they
// have elected a JetStream meta leader.
func startCluster(t testing.TB, names ...string) []*natsNode {
	t.Helper()
	cports := make([]int, len(names))
	for i := range names {
		cports[i] = freePort(t)
	}
	nodes := make([]*natsNode, len(names))
	for i, name := range names {
		var routes []string
		for j, cp := range cports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cp))
			}
		}
		nodes[i] = newNATSNode(t, name, &clusterSpec{port: cports[i], routes: routes})
	}
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitHealthy(60 * time.Second)
	}
	return nodes
}

type clusterSpec struct {
	port   int
	routes []string
}

func newNATSNode(t testing.TB, name string, cl *clusterSpec) *natsNode {
	n := &natsNode{Name: name, Port: freePort(t), Mon: freePort(t), Dir: filepath.Join(t.TempDir(), name)}
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(n.Port), "-m", strconv.Itoa(n.Mon), "-js", "-sd", n.Dir, "-n", name}
	if cl != nil {
		n.Cluster = cl.port
		args = append(args, "--cluster_name", "promemoria", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cl.port),
			"--routes", strings.Join(cl.routes, ","))
	}
	n.proc = newProc(t, "nats-"+name, natsServerBin, args)
	return n
}

// URL is the client URL of the node.
func (n *natsNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// Start starts the node (again) and waits until it is healthy.
func (n *natsNode) Start() {
	n.t.Helper()
	n.launch()
	n.waitHealthy(60 * time.Second)
}

// Stop stops the node with SIGTERM (a clean shutdown).
func (n *natsNode) Stop() { n.signal(syscall.SIGTERM, 30*time.Second) }

// Kill kills the node with SIGKILL.
func (n *natsNode) Kill() { n.signal(syscall.SIGKILL, 10*time.Second) }

// waitHealthy polls /healthz until JetStream is ready on the node.
func (n *natsNode) waitHealthy(d time.Duration) {
	n.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.Mon)
	waitFor(n.t, d, n.Name+" healthy", func() bool {
		if !n.Running() {
			n.t.Fatalf("%s exited:\n%s", n.Name, n.logSince())
		}
		return httpStatus(url) == http.StatusOK
	})
}

// ---------------------------------------------------------------- promemoria

// workerProc is a promemoria serve process.
type workerProc struct {
	*proc
	httpAddr string
}

// baseFlags compress the service's time for the tests; reminders go at any
// hour, so that no test depends on when it runs; a replica takes over a
// killed leader within seconds.
var baseFlags = []string{
	"--http-listen", "127.0.0.1:0", "--settle", "1s", "--repeat-interval", "3s", "--escalate-before", "5s",
	"--sweep-grace", "2s", "--log-format", "json", "--office-hours", "always", "--lease-ttl", "3s",
}

// newWorker prepares (but does not start) a promemoria process connected
// to urls; extra flags override the base ones.
func newWorker(t testing.TB, name, urls string, extra ...string) *workerProc {
	args := append([]string{"serve", "--nats-url", urls}, baseFlags...)
	args = append(args, extra...)
	return &workerProc{proc: newProc(t, name, promemoriaBin, args)}
}

// startWorker starts a promemoria process and waits until it consumes.
func startWorker(t testing.TB, name, urls string, extra ...string) *workerProc {
	w := newWorker(t, name, urls, extra...)
	w.Start(true)
	return w
}

// Start starts the worker; with wait it returns once the worker logged
// "worker started" (its consumers are bound).
func (w *workerProc) Start(wait bool) {
	w.t.Helper()
	w.httpAddr = ""
	w.launch()
	if wait {
		w.WaitStarted(60 * time.Second)
	}
}

// WaitStarted waits for the worker's "worker started" log line and reads
// its HTTP address from "HTTP endpoints listening".
func (w *workerProc) WaitStarted(d time.Duration) {
	w.t.Helper()
	waitFor(w.t, d, w.name+" started", func() bool {
		if !w.Running() {
			w.t.Fatalf("%s exited:\n%s", w.name, w.logSince())
		}
		started := false
		for _, l := range logLines(w.logSince()) {
			switch l["message"] {
			case "HTTP endpoints listening":
				w.httpAddr, _ = l["addr"].(string)
			case "worker started":
				started = true
			}
		}
		return started && w.httpAddr != ""
	})
}

// Kill kills the worker with SIGKILL: nothing is drained, nothing acked.
func (w *workerProc) Kill() { w.signal(syscall.SIGKILL, 10*time.Second) }

// Stop stops the worker with SIGTERM and waits for its drain.
func (w *workerProc) Stop() { w.signal(syscall.SIGTERM, 60*time.Second) }

// Readyz returns the HTTP status of /readyz (0 if unreachable).
func (w *workerProc) Readyz() int {
	if w.httpAddr == "" {
		return 0
	}
	return httpStatus("http://" + w.httpAddr + "/readyz")
}

// logLines parses JSON log lines, skipping anything else.
func logLines(b []byte) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// countLog counts the log lines of the whole log file (every run) whose
// message is msg.
func (p *proc) countLog(msg string) int {
	b, _ := os.ReadFile(p.logPath)
	n := 0
	for _, l := range logLines(b) {
		if l["message"] == msg {
			n++
		}
	}
	return n
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func httpStatus(url string) int {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// ---------------------------------------------------------------- client

// client is the test's own connection: it publishes inputs and reads the
// state and the outputs, and reconnects on its own through broker faults.
type client struct {
	t  testing.TB
	nc *nats.Conn
	js jetstream.JetStream
}

func dial(t testing.TB, urls string) *client {
	t.Helper()
	nc, err := nats.Connect(urls, nats.Name("reliability-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.Timeout(2*time.Second), nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, nc: nc, js: js}
}

// input is one message for the input stream.
type input struct {
	Subject string
	MsgID   string // Nats-Msg-Id; "" sends none
	Body    []byte
	Header  nats.Header
}

const prefix = "procurement"

// event builds a CloudEvents input of type typ with Nats-Msg-Id = id, as
// the contract asks publishers to do.
func event(typ events.Type, source, id string, at time.Time, data any) input {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	env := events.Envelope{SpecVersion: "1.0", ID: id, Source: source, Type: typ, Time: at.UTC(), DataContentType: events.ContentType, Data: raw}
	body, _ := json.Marshal(env)
	return input{Subject: prefix + "." + string(typ), MsgID: id, Body: body}
}

// publish stores in on the input stream, retrying through broker faults
// (the Nats-Msg-Id makes a retry of a stored message a no-op).
func (c *client) publish(in input) *jetstream.PubAck {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		msg := nats.NewMsg(in.Subject)
		msg.Data = in.Body
		for k, v := range in.Header {
			msg.Header[k] = v
		}
		if in.MsgID != "" {
			msg.Header.Set(events.HeaderMsgID, in.MsgID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ack, err := c.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			return ack
		}
		if time.Now().After(deadline) {
			c.t.Errorf("publish %s: %v", in.Subject, err)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publishAll publishes ins with a few publishers at once; messages of one
// publisher keep their order.
func (c *client) publishAll(ins []input) {
	const lanes = 4
	var wg sync.WaitGroup
	for lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lane; i < len(ins); i += lanes {
				c.publish(ins[i])
			}
		}()
	}
	wg.Wait()
}

func (c *client) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// consumerIdle reports whether a durable consumer has nothing left to
// deliver and nothing delivered but unacknowledged.
func (c *client) consumerIdle(stream, name string) bool {
	ctx, cancel := c.ctx()
	defer cancel()
	cons, err := c.js.Consumer(ctx, stream, name)
	if err != nil {
		return false
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false
	}
	return info.NumPending == 0 && info.NumAckPending == 0
}

// inputsDone reports whether every input event has been settled.
func (c *client) inputsDone() bool { return c.consumerIdle(worker.StreamEvents, worker.ConsumerEvent) }

// timersDone reports whether no fired timer waits to be processed.
func (c *client) timersDone() bool {
	if !c.consumerIdle(worker.StreamTimers, worker.ConsumerTimer) {
		return false
	}
	n, ok := c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+".fire.>")
	return ok && n == 0
}

// subjectCount counts the messages of stream on subjects matching filter.
func (c *client) subjectCount(stream, filter string) (int, bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.js.Stream(ctx, stream)
	if err != nil {
		return 0, false
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, false
	}
	n := 0
	for _, v := range info.State.Subjects {
		n += int(v)
	}
	return n, true
}

// pendingGapTimers counts the gap schedules waiting in the timer stream.
func (c *client) pendingGapTimers() (int, bool) {
	return c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+".sched.gap.>")
}

// gapTimerKeys returns up to n keys of pending gap schedules.
func (c *client) gapTimerKeys(n int) []string {
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.js.Stream(ctx, worker.StreamTimers)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("_promemoria."+prefix+".sched.gap.>"))
	if err != nil {
		return nil
	}
	var keys []string
	for s := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(s, "_promemoria."+prefix+".sched."))
	}
	sort.Strings(keys)
	return keys[:min(n, len(keys))]
}

// gapRecords reads every open gap record of the state bucket. A resolved
// gap stays in the bucket as a closed record (open=false, its resolution
// kept) so that no stale derivation can open it again: for the invariants
// it counts as gone.
func (c *client) gapRecords() (map[string]gap.Gap, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, worker.BucketState)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeysFiltered(ctx, "gap.>")
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	out := make(map[string]gap.Gap, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var g gap.Gap
		if err := json.Unmarshal(e.Value(), &g); err != nil {
			return nil, fmt.Errorf("gap %s: %w", k, err)
		}
		if !g.Open {
			continue
		}
		out[k] = g
	}
	return out, nil
}

// streamLeaders returns the server leading each of promemoria's streams
// and buckets.
func (c *client) streamLeaders() map[string]string {
	out := map[string]string{}
	for _, s := range []string{worker.StreamEvents, worker.StreamOutput, worker.StreamTimers, "KV_" + worker.BucketState, "KV_" + worker.BucketSeen} {
		ctx, cancel := c.ctx()
		st, err := c.js.Stream(ctx, s)
		if err == nil {
			if info, err := st.Info(ctx); err == nil && info.Cluster != nil {
				out[s] = info.Cluster.Leader
			}
		}
		cancel()
	}
	return out
}

// ---------------------------------------------------------------- outputs

// out is one message of the output stream.
type out struct {
	Seq      uint64
	Subject  string
	MsgID    string
	Env      events.Envelope
	Reminder *events.Reminder
	Resolved *events.Resolved
	Dead     *events.DeadLetter
	Advice   *events.Advice
	Bad      string // why it could not be decoded
}

func (o out) String() string {
	switch {
	case o.Reminder != nil:
		return fmt.Sprintf("#%d %s %s/%s/%s seq=%d to=%s", o.Seq, o.Env.Type, o.Reminder.TenderID, o.Reminder.LotID, o.Reminder.OperatorFiscalCode, o.Reminder.Sequence, o.Reminder.Recipient.Email)
	case o.Resolved != nil:
		return fmt.Sprintf("#%d %s %s/%s/%s by=%s sent=%d", o.Seq, o.Env.Type, o.Resolved.TenderID, o.Resolved.LotID, o.Resolved.OperatorFiscalCode, o.Resolved.Resolution.By, o.Resolved.RemindersSent)
	case o.Dead != nil:
		return fmt.Sprintf("#%d deadletter %s %s", o.Seq, o.Dead.Reason, o.Dead.Error)
	}
	return fmt.Sprintf("#%d %s %s", o.Seq, o.Subject, o.Bad)
}

// collector reads the output stream from its start with an ordered
// consumer, so it sees exactly what was stored. The ordered consumer
// recreates itself across reconnects and leader changes; if it falls
// behind anyway, caughtUp restarts it where it stopped.
type collector struct {
	c *client

	mu       sync.Mutex
	msgs     []out
	lastSeq  uint64
	cc       jetstream.ConsumeContext
	stalled  time.Time // since when lastSeq has not moved while behind
	stallSeq uint64
	resets   int
}

func (c *client) collect() *collector {
	col := &collector{c: c}
	col.restart()
	c.t.Cleanup(func() {
		col.mu.Lock()
		cc := col.cc
		col.cc = nil
		col.mu.Unlock()
		if cc != nil {
			cc.Stop()
		}
	})
	return col
}

// restart (re)creates the ordered consumer after the last message read.
// mu must not be held: stopping a consumer may wait for its handler.
func (col *collector) restart() {
	col.mu.Lock()
	old := col.cc
	col.cc = nil
	from := col.lastSeq
	col.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	ctx, cancel := col.c.ctx()
	defer cancel()
	cfg := jetstream.OrderedConsumerConfig{}
	if from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	cons, err := col.c.js.OrderedConsumer(ctx, worker.StreamOutput, cfg)
	if err != nil {
		return // the stream may not exist yet, or the broker is down: caughtUp retries
	}
	cc, err := cons.Consume(col.add)
	if err != nil {
		return
	}
	col.mu.Lock()
	col.cc = cc
	col.mu.Unlock()
}

func (col *collector) add(m jetstream.Msg) {
	meta, _ := m.Metadata()
	o := out{Subject: m.Subject(), MsgID: m.Headers().Get(events.HeaderMsgID)}
	if meta != nil {
		o.Seq = meta.Sequence.Stream
	}
	if err := json.Unmarshal(m.Data(), &o.Env); err != nil {
		o.Bad = "not a CloudEvent: " + err.Error()
	} else {
		var err error
		switch o.Env.Type {
		case events.TypeReminderResolved:
			o.Resolved = &events.Resolved{}
			err = json.Unmarshal(o.Env.Data, o.Resolved)
		case events.TypeDeadLetter:
			o.Dead = &events.DeadLetter{}
			err = json.Unmarshal(o.Env.Data, o.Dead)
		case events.TypeReminderCIG, events.TypeReminderContribution, events.TypeReminderEscalation:
			o.Reminder = &events.Reminder{}
			err = json.Unmarshal(o.Env.Data, o.Reminder)
		case events.TypeAdviceExtension:
			o.Advice = &events.Advice{}
			err = json.Unmarshal(o.Env.Data, o.Advice)
		default:
			o.Bad = "unknown type " + string(o.Env.Type)
		}
		if err != nil {
			o.Bad = "bad data: " + err.Error()
		}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if o.Seq != 0 && o.Seq <= col.lastSeq {
		return // redelivered by a reset consumer
	}
	col.msgs = append(col.msgs, o)
	if o.Seq != 0 {
		col.lastSeq = o.Seq
	}
}

func (col *collector) all() []out {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]out(nil), col.msgs...)
}

func (col *collector) count(f func(out) bool) int {
	col.mu.Lock()
	defer col.mu.Unlock()
	n := 0
	for _, o := range col.msgs {
		if f(o) {
			n++
		}
	}
	return n
}

// caughtUp reports whether the collector has read up to the stream's last
// message; it restarts a consumer that seems stuck.
func (col *collector) caughtUp() bool {
	ctx, cancel := col.c.ctx()
	defer cancel()
	st, err := col.c.js.Stream(ctx, worker.StreamOutput)
	if err != nil {
		return false
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false
	}
	col.mu.Lock()
	restart := false
	switch {
	case info.State.LastSeq == col.lastSeq:
		col.stalled = time.Time{}
		col.mu.Unlock()
		return true
	case col.cc == nil:
		restart = true
	case col.stalled.IsZero() || col.stallSeq != col.lastSeq:
		col.stalled, col.stallSeq = time.Now(), col.lastSeq
	case time.Since(col.stalled) > 5*time.Second:
		col.resets++
		col.stalled = time.Now()
		restart = true
	}
	col.mu.Unlock()
	if restart {
		col.restart()
	}
	return false
}

// waitCaughtUp waits until the collector has read the whole stream.
func (col *collector) waitCaughtUp(t testing.TB) {
	t.Helper()
	waitFor(t, 30*time.Second, "collector caught up with the output stream", col.caughtUp)
}

// ---------------------------------------------------------------- waiting

// waitFor polls cond until it holds or d passes; it fails the test then.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// waitUntil is waitFor that, on a timeout, also says where the pipeline
// stands (the client's consumers, timers and outputs) and lets the test go
// on to its checks, which say what is missing.
func (c *client) waitUntil(t testing.TB, col *collector, d time.Duration, what string, cond func() bool) bool {
	t.Helper()
	if !poll(d, cond) {
		t.Errorf("timed out after %s waiting for %s; %s", d, what, c.diagnose(col))
		return false
	}
	return true
}

// waitSettled waits until nothing is in flight (no input, fired timer or
// restoration pass waiting) and the output stream has not grown for a
// second, then reads the stream to its end. It does not say whether the
// outcome is right: the checks that follow do.
func (c *client) waitSettled(t testing.TB, col *collector, d time.Duration, what string) bool {
	t.Helper()
	n, since := -1, time.Now()
	ok := poll(d, func() bool {
		if !quiet(c) {
			n = -1
			return false
		}
		if m := len(col.all()); m != n {
			n, since = m, time.Now()
			return false
		}
		return time.Since(since) >= time.Second && col.caughtUp()
	})
	if !ok {
		t.Errorf("timed out after %s waiting for %s to settle; %s", d, what, c.diagnose(col))
	}
	return ok
}

// quiet reports whether no input, no fired timer and no restoration pass
// is waiting to be processed.
func quiet(c *client) bool {
	if !c.inputsDone() || !c.timersDone() {
		return false
	}
	n, ok := c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+".sched.pass.>")
	return ok && n == 0
}

// diagnose describes the consumers, the timers and the outputs.
func (c *client) diagnose(col *collector) string {
	var b strings.Builder
	for _, cn := range [][2]string{{worker.StreamEvents, worker.ConsumerEvent}, {worker.StreamTimers, worker.ConsumerTimer}} {
		ctx, cancel := c.ctx()
		cons, err := c.js.Consumer(ctx, cn[0], cn[1])
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = cons.Info(ctx); err == nil {
				fmt.Fprintf(&b, "consumer %s: pending %d, ack pending %d, redelivered %d, waiting %d; ", cn[1], info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting)
			}
		}
		if err != nil {
			fmt.Fprintf(&b, "consumer %s: %v; ", cn[1], err)
		}
		cancel()
	}
	for _, f := range []string{"fire.>", "sched.pass.>", "sched.gap.>"} {
		n, ok := c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+"."+f)
		fmt.Fprintf(&b, "timers %s: %d (%v); ", f, n, ok)
	}
	ctx, cancel := c.ctx()
	if st, err := c.js.Stream(ctx, worker.StreamTimers); err == nil {
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter("_promemoria."+prefix+".fire.>")); err == nil {
			var subs []string
			for s, n := range info.State.Subjects {
				subs = append(subs, fmt.Sprintf("%s×%d", strings.TrimPrefix(s, "_promemoria."+prefix+".fire."), n))
			}
			sort.Strings(subs)
			if len(subs) > 12 {
				subs = append(subs[:12], "…")
			}
			fmt.Fprintf(&b, "fired timers waiting: %v; ", subs)
		}
	}
	cancel()
	if col != nil {
		l := analyse(col.all())
		fmt.Fprintf(&b, "outputs: %s", l.summary())
	}
	return b.String()
}

// poll polls cond every 50ms until it holds (true) or d passes (false).
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// metric sums the samples of a Prometheus metric on the worker's /metrics
// whose labels contain every one of match (e.g. `outcome="ok"`).
func (w *workerProc) metric(name string, match ...string) float64 {
	if w.httpAddr == "" {
		return 0
	}
	resp, err := httpClient.Get("http://" + w.httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// stateSummary counts the gap records and gap timers left.
func (c *client) stateSummary() string {
	recs, err := c.gapRecords()
	if err != nil {
		return "state bucket unreadable: " + err.Error()
	}
	n, _ := c.pendingGapTimers()
	return fmt.Sprintf("%d gap records and %d gap timers left", len(recs), n)
}

// stable watches for d that nothing more is published on the output stream
// and that no gap record reappears: once every tender is closed, silence is
// the only right outcome, and a late reminder or a resurrected gap shows
// here. It reports what broke the silence.
func stable(t testing.TB, c *client, col *collector, d time.Duration) {
	t.Helper()
	n := len(col.all())
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m := col.all(); len(m) != n {
			t.Errorf("output after every gap was closed: %s", m[n])
			return
		}
		if recs, err := c.gapRecords(); err == nil && len(recs) > 0 {
			for k := range recs {
				t.Errorf("gap record %s reappeared after every gap was closed", k)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamReplicas returns the replication factor of promemoria's streams
// and buckets.
func (c *client) streamReplicas() map[string]int {
	out := map[string]int{}
	for _, s := range []string{worker.StreamEvents, worker.StreamOutput, worker.StreamTimers, "KV_" + worker.BucketState, "KV_" + worker.BucketSeen} {
		ctx, cancel := c.ctx()
		if st, err := c.js.Stream(ctx, s); err == nil {
			if info, err := st.Info(ctx); err == nil {
				out[s] = info.Config.Replicas
			}
		}
		cancel()
	}
	return out
}

// grepLog returns the last log line of the process containing every one
// of pats, or the last line containing the last pattern, or "".
func (p *proc) grepLog(pats ...string) string {
	b, _ := os.ReadFile(p.logPath)
	var hit, fallback string
	for _, l := range strings.Split(string(b), "\n") {
		all := true
		for _, s := range pats {
			all = all && strings.Contains(l, s)
		}
		if all {
			hit = l
		}
		if len(pats) > 0 && strings.Contains(l, pats[len(pats)-1]) {
			fallback = l
		}
	}
	if hit != "" {
		return hit
	}
	return fallback
}
