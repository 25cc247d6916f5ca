// Package bench measures promemoria against the limits of the bus it runs
// on. Everything runs against a real embedded nats-server with JetStream,
// started in this process and configured as promemoria's app configures it
// (same limits, same defaults, the worker connected in-process):
//
//   - the ceiling: raw JetStream consume + ack of the input messages (no
//     work), and raw asynchronous publish with deduplication ids;
//   - a naive worker: for each message decode, one KV compare-and-set, one
//     synchronous publish, ack, one message at a time;
//   - promemoria: its real worker (worker.New + Run), end to end.
//
// The workloads are a steady stream of a realistic mix of inputs
// (throughput, and publish-to-reminder latency at a paced rate), the
// restoration fan-out of N gaps left by an outage, memory, and restart with
// open gaps on disk. Every run checks what it produced: a figure is only
// reported for a run whose outputs are the expected ones, each once.
//
// RunProcessSteady and RunProcessFanOut measure promemoria as it is
// deployed instead: the promemoria binary as a process of its own
// (`promemoria serve --nats-url`) against a nats-server process, over
// loopback TCP, with the ceiling's consume + ack over TCP from this
// process, and CPU and peak RSS read per process.
//
// cmd/bench prints the table; bench_test.go holds the Go benchmarks and the
// CI smoke test.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/worker"
)

// Prefix is the subject prefix of every benchmark (promemoria's default).
const Prefix = events.DefaultPrefix

// Subjects are the benchmark's subjects.
var Subjects = events.Subjects{Prefix: Prefix}

// Env is one embedded nats-server with JetStream on a data directory.
type Env struct {
	Dir string
	Cfg *config.Config
	Srv *natsserver.Server
	// TCP makes every client connect over loopback TCP instead of
	// in-process (the app connects its worker in-process).
	TCP   bool
	conns []*nats.Conn
}

// Config returns promemoria's default configuration on dataDir, as
// `promemoria serve` would build it with no flags and no environment,
// followed by the given flag overrides (like "--settle", "0s").
func Config(dataDir string, overrides ...string) (*config.Config, error) {
	// Reminders go at any time: the benchmark measures throughput, not office hours.
	args := append([]string{"--data-dir", dataDir, "--http-listen", "", "--log-level", "warn", "--office-hours", "always"}, overrides...)
	return config.Load("bench", args, func(string) string { return "" }, io.Discard)
}

// StartEnv starts an embedded server on dir (created if needed) with
// promemoria's default configuration plus overrides.
func StartEnv(dir string, tcp bool, overrides ...string) (*Env, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg, err := Config(dir, overrides...)
	if err != nil {
		return nil, err
	}
	srv, err := natsserver.Start(natsserver.Options{
		Listen: "127.0.0.1:0", DataDir: dir,
		MaxMemory: cfg.JetStreamMaxMemory, MaxStore: cfg.JetStreamMaxStore, SyncAlways: cfg.SyncAlways,
		ServerName: "promemoria",
	})
	if err != nil {
		return nil, err
	}
	return &Env{Dir: dir, Cfg: cfg, Srv: srv, TCP: tcp}, nil
}

// Connect opens a client connection: in-process as the app's worker does,
// or TCP if the environment says so. It is closed by Stop.
func (e *Env) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1)}
	url := e.Srv.ClientURL()
	if !e.TCP {
		opts = append(opts, nats.InProcessServer(e.Srv.Server))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	e.conns = append(e.conns, nc)
	return nc, nil
}

// JetStream opens a connection and a JetStream context on it.
func (e *Env) JetStream(name string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	nc, err := e.Connect(name)
	if err != nil {
		return nil, err
	}
	return jetstream.New(nc, opts...)
}

// Stop closes the connections and shuts the server down.
func (e *Env) Stop() {
	for _, nc := range e.conns {
		nc.Close()
	}
	e.conns = nil
	if e.Srv != nil {
		e.Srv.Stop()
		e.Srv = nil
	}
}

// WorkerOptions returns the worker options the app derives from cfg.
func WorkerOptions(cfg *config.Config, log zerolog.Logger) worker.Options {
	o, err := app.WorkerOptions(cfg)
	if err != nil {
		panic(fmt.Sprintf("bench: worker options: %v", err))
	}
	o.Logger, o.Name = log, "bench"
	return o
}

// Logger is the worker's logger in the benchmark: the app's default level
// (info), formatted as the app formats it, written nowhere.
var Logger = zerolog.New(io.Discard).Level(zerolog.InfoLevel).With().Timestamp().Logger()

// Worker is a promemoria worker running in this process.
type Worker struct {
	W      *worker.Worker
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// NewWorker provisions promemoria on env and returns its worker, not yet
// running.
func (e *Env) NewWorker(ctx context.Context) (*Worker, error) {
	nc, err := e.Connect("promemoria")
	if err != nil {
		return nil, err
	}
	w, err := worker.New(ctx, nc, WorkerOptions(e.Cfg, Logger))
	if err != nil {
		return nil, err
	}
	return &Worker{W: w, nc: nc}, nil
}

// Run starts the worker's Run loop.
func (w *Worker) Run() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan error, 1)
	go func() { w.done <- w.W.Run(ctx) }()
}

// WaitReady waits until the worker's consumers are bound.
func (w *Worker) WaitReady(ctx context.Context) error {
	for !w.W.Ready() {
		if err := sleep(ctx, time.Millisecond); err != nil {
			return fmt.Errorf("worker not ready: %w", err)
		}
	}
	return nil
}

// Stop stops the worker (draining what it holds) and waits for it.
func (w *Worker) Stop() error {
	if w.cancel == nil {
		return nil
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		return err
	case <-time.After(60 * time.Second):
		return errors.New("worker did not stop within 60s")
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Drained reports whether the durable consumer has delivered and had acked
// every message of its stream, and how many messages remain.
func Drained(ctx context.Context, js jetstream.JetStream, stream, consumer string) (bool, uint64, error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return false, 0, err
	}
	ci := c.CachedInfo() // fetched by js.Consumer just now
	left := ci.NumPending + uint64(ci.NumAckPending)
	return left == 0, left, nil
}

// SubjectCounts returns the number of messages on each subject of stream
// that matches filter.
func SubjectCounts(ctx context.Context, js jetstream.JetStream, stream, filter string) (map[string]uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	if info.State.Subjects == nil {
		return map[string]uint64{}, nil
	}
	return info.State.Subjects, nil
}

// Mem is a reading of the process's memory, in bytes.
type Mem struct {
	// RSS is the resident set now (VmRSS); Peak the highest since the
	// process started or since ResetPeak (VmHWM).
	RSS, Peak int64
}

// ReadMem reads /proc/self/status.
func ReadMem() (Mem, error) { return readMem("/proc/self/status") }

// readMem reads VmRSS and VmHWM from a /proc/<pid>/status file.
func readMem(path string) (Mem, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, line := range strings.Split(string(b), "\n") {
		field, val, ok := strings.Cut(line, ":")
		if !ok || (field != "VmRSS" && field != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("%s %s: %w", path, field, err)
		}
		if field == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.Peak = kb << 10
		}
	}
	return m, nil
}

// ResetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func ResetPeak() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// Traffic is a reading of the server's counters: the messages it received
// from clients (publishes, acks, requests, pulls) and the last sequence of
// every stream (what each has stored since it was created).
type Traffic struct {
	MsgsIn int64
	Seqs   map[string]uint64
}

// ReadTraffic reads the counters.
func (e *Env) ReadTraffic(ctx context.Context, js jetstream.JetStream) (Traffic, error) {
	t := Traffic{Seqs: map[string]uint64{}}
	v, err := e.Srv.Varz(nil)
	if err != nil {
		return t, err
	}
	t.MsgsIn = v.InMsgs
	return t, readSeqs(ctx, js, &t)
}

// readSeqs reads the last sequence of every stream into t.
func readSeqs(ctx context.Context, js jetstream.JetStream, t *Traffic) error {
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		t.Seqs[name] = s.CachedInfo().State.LastSeq
	}
	return names.Err()
}

// Load is what a measured phase cost the server.
type Load struct {
	// MsgsIn is the number of messages the server received from clients.
	MsgsIn int64
	// Writes counts the messages stored, by stream (the input stream
	// excluded: it is the same for every system).
	Writes map[string]uint64
}

// TotalWrites sums Writes.
func (l Load) TotalWrites() uint64 {
	var n uint64
	for _, w := range l.Writes {
		n += w
	}
	return n
}

// Since returns the load between an earlier reading and t.
func (t Traffic) Since(before Traffic) Load {
	l := Load{MsgsIn: t.MsgsIn - before.MsgsIn, Writes: map[string]uint64{}}
	for name, seq := range t.Seqs {
		if name == worker.StreamEvents {
			continue
		}
		if d := seq - before.Seqs[name]; d > 0 {
			l.Writes[name] = d
		}
	}
	return l
}

// CPUTime returns the CPU time (user + system) this process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
