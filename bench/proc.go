package bench

import (
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/config"
)

// This file runs promemoria and a nats-server as processes of their own,
// as they are deployed: `promemoria serve --nats-url` connected over
// loopback TCP to an external nats-server.

// Binaries are the executables the process measurements run.
type Binaries struct {
	// Promemoria is the promemoria command; NATSServer the nats-server.
	Promemoria, NATSServer string
}

// BuildBinaries builds promemoria (this module's ./cmd/promemoria) and the
// nats-server of this module's go.mod (from the module cache, as the
// reliability suite does) into dir with `go build`.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Promemoria: filepath.Join(dir, "promemoria"), NATSServer: filepath.Join(dir, "nats-server")}
	for _, x := range []struct{ out, pkg string }{
		{b.Promemoria, "github.com/promemoria/promemoria/cmd/promemoria"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", x.out, x.pkg)
		cmd.Dir = moduleDir()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", x.pkg, err, out.Bytes())
		}
	}
	return b, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// moduleDir returns the root of this module's source if it can find it
// (the directory above this file), otherwise "" (the working directory).
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Dir(filepath.Dir(file))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return ""
	}
	return root
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error // why it exited; set before done is closed
}

func startProc(name, bin, logPath string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A benchmark that dies leaves no child behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		f.Close()
		if err == nil {
			err = errors.New("exited")
		}
		p.err = fmt.Errorf("%s %w", name, err)
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to wait for the process to exit, then
// kills it. It reports a process that had to be killed or did not exit
// cleanly.
func (p *proc) stop(wait time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%w before it was stopped%s", p.err, p.tail())
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if st := p.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("%s: %s on SIGTERM%s", p.name, st, p.tail())
		}
		return nil
	case <-time.After(wait):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not exit within %s of SIGTERM: killed", p.name, wait)
}

// kill kills the process if it still runs.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the log, for an error message.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "\n  " + p.name + " log (" + p.logPath + "):\n  " + strings.Join(lines, "\n  ")
}

// Mem reads the process's memory (VmRSS, VmHWM).
func (p *proc) Mem() (Mem, error) { return readMem(fmt.Sprintf("/proc/%d/status", p.Pid())) }

// ResetPeak resets the process's VmHWM to its current RSS.
func (p *proc) ResetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.Pid()), []byte("5"), 0)
}

// CPU returns the CPU time (user + system) the process has used.
func (p *proc) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, in clock ticks (100 a second
	// on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// exitContext returns a context that is cancelled, with the process's exit
// as its cause, if the process exits.
func (p *proc) exitContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-p.done:
			cancel(fmt.Errorf("%w%s", p.err, p.tail()))
		case <-stop:
		}
	}()
	var once sync.Once
	return ctx, func() { once.Do(func() { close(stop); cancel(nil) }) }
}

// withCause adds the cause of ctx's cancellation to err.
func withCause(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, ctx.Err()) && !strings.Contains(err.Error(), c.Error()) {
		return fmt.Errorf("%w (%v)", err, c)
	}
	return err
}

var procHTTP = &http.Client{Timeout: 2 * time.Second}

func httpGet(url string) (int, []byte) {
	resp, err := procHTTP.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsUsed[p] {
			portsUsed[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

// NATSProcess is an external nats-server process with JetStream and file
// storage, listening on loopback TCP, configured with the limits
// promemoria gives its embedded server.
type NATSProcess struct {
	*proc
	Dir string
	// URL is the client URL; MonURL the monitoring endpoint.
	URL, MonURL string
	// Cfg is promemoria's default configuration (the limits, the output
	// stream's duplicate window).
	Cfg   *config.Config
	conns []*nats.Conn
}

// StartNATSProcess starts bin with JetStream on dir (created if needed) on
// free loopback ports and waits until JetStream is ready.
func StartNATSProcess(ctx context.Context, bin, dir string) (*NATSProcess, error) {
	store := filepath.Join(dir, "jetstream")
	ports := filepath.Join(dir, "ports")
	for _, d := range []string{store, ports} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	cfg, err := Config(filepath.Join(dir, "unused"))
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("listen: \"127.0.0.1:-1\"\nhttp: \"127.0.0.1:-1\"\nserver_name: \"promemoria-bench\"\n"+
		"jetstream {\n  store_dir: %q\n  max_memory_store: %d\n  max_file_store: %d\n", store, cfg.JetStreamMaxMemory, cfg.JetStreamMaxStore)
	if cfg.SyncAlways {
		conf += "  sync_interval: \"always\"\n"
	}
	conf += "}\n"
	confPath := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("nats-server", bin, filepath.Join(dir, "nats-server.log"), "-c", confPath, "--ports_file_dir", ports)
	if err != nil {
		return nil, err
	}
	n := &NATSProcess{proc: p, Dir: dir, Cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			p.kill()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			return nil, fmt.Errorf("%w%s", p.err, p.tail())
		}
		if n.URL == "" {
			if m, _ := filepath.Glob(filepath.Join(ports, "*_"+strconv.Itoa(p.Pid())+".ports")); len(m) > 0 {
				var pf struct{ Nats, Monitoring []string }
				if b, err := os.ReadFile(m[0]); err == nil && json.Unmarshal(b, &pf) == nil && len(pf.Nats) > 0 && len(pf.Monitoring) > 0 {
					n.URL, n.MonURL = pf.Nats[0], pf.Monitoring[0]
				}
			}
		}
		if n.URL != "" {
			if code, _ := httpGet(n.MonURL + "/healthz"); code == http.StatusOK {
				ok = true
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nats-server not healthy after 60s%s", p.tail())
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Connect opens a client connection over TCP; Stop closes it.
func (n *NATSProcess) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(n.URL, nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	n.conns = append(n.conns, nc)
	return nc, nil
}

// JetStream opens a connection and a JetStream context on it.
func (n *NATSProcess) JetStream(name string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	nc, err := n.Connect(name)
	if err != nil {
		return nil, err
	}
	return jetstream.New(nc, opts...)
}

// ReadTraffic reads the server's counters (over its monitoring endpoint).
func (n *NATSProcess) ReadTraffic(ctx context.Context, js jetstream.JetStream) (Traffic, error) {
	t := Traffic{Seqs: map[string]uint64{}}
	code, b := httpGet(n.MonURL + "/varz")
	var v struct {
		InMsgs int64 `json:"in_msgs"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &v) != nil {
		return t, fmt.Errorf("nats-server /varz: status %d", code)
	}
	t.MsgsIn = v.InMsgs
	return t, readSeqs(ctx, js, &t)
}

// Stop closes the connections and stops the server (SIGTERM).
func (n *NATSProcess) Stop() error {
	for _, nc := range n.conns {
		nc.Close()
	}
	n.conns = nil
	return n.stop(60 * time.Second)
}

// PromemoriaProcess is `promemoria serve` connected to an external server.
type PromemoriaProcess struct {
	*proc
	// HTTPAddr is where /readyz answers.
	HTTPAddr string
}

// StartPromemoria starts `bin serve` connected to url, with reminders at
// any hour, its HTTP endpoints on a free loopback port, logging (at the
// default level) to log, followed by the given flag overrides (like
// "--settle", "0s").
func StartPromemoria(bin, url, log string, overrides ...string) (*PromemoriaProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"serve", "--nats-url", url, "--http-listen", addr, "--office-hours", "always",
		"--data-dir", filepath.Join(filepath.Dir(log), "promemoria-data-unused")}, overrides...)
	p, err := startProc("promemoria", bin, log, args...)
	if err != nil {
		return nil, err
	}
	return &PromemoriaProcess{proc: p, HTTPAddr: addr}, nil
}

// WaitReady polls /readyz until it answers 200 and returns the time from
// the process's start to that answer.
func (p *PromemoriaProcess) WaitReady(ctx context.Context, within time.Duration) (time.Duration, error) {
	url := "http://" + p.HTTPAddr + "/readyz"
	deadline := p.started.Add(within)
	for {
		if code, _ := httpGet(url); code == http.StatusOK {
			return time.Since(p.started), nil
		}
		if p.exited() {
			return 0, fmt.Errorf("%w before it was ready%s", p.err, p.tail())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("promemoria not ready within %s%s", within, p.tail())
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// Stop stops promemoria with SIGTERM and waits for its drain.
func (p *PromemoriaProcess) Stop() error { return p.stop(90 * time.Second) }
