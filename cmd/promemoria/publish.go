package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
)

// stdin is what "publish TYPE -" reads; tests replace it.
var stdin io.Reader = os.Stdin

const publishUsage = `Usage: promemoria publish TYPE [FILE|-] [flags]

Wraps the JSON object in FILE (standard input if FILE is - or absent) as the
data of a CloudEvents 1.0 event of type TYPE, checks it exactly as the worker
will, and publishes it on <subject-prefix>.TYPE with Nats-Msg-Id = its id,
waiting for the JetStream acknowledgement. An event the worker would
dead-letter is refused with the same reason and nothing is published.

TYPE is one of: %s.

Example:
  echo '{"services": ["smartcig"], "notice": "Smart CIG non disponibile"}' |
    promemoria publish portal.down

Exit status: 0 published, 1 refused or failed, 2 bad usage.
`

func runPublish(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("publish")
	var cf clientFlags
	cf.register(fs, getenv)
	source := fs.String("source", "promemoria-cli", "CloudEvents source of the event")
	id := fs.String("id", "", "CloudEvents id and Nats-Msg-Id (default: a fresh random id); the same source and id twice are one event")
	at := fs.String("time", "", "CloudEvents time, RFC 3339 (default: now)")
	maxBytes := fs.Int("max-event-bytes", envInt(getenv, "PROMEMORIA_MAX_EVENT_BYTES", 65536),
		"largest event the worker accepts; keep it equal to the service's setting (env PROMEMORIA_MAX_EVENT_BYTES)")
	usage := fmt.Sprintf(publishUsage, strings.Join(inputTypeNames(), ", "))
	pos, code := parseCommand(fs, "publish", usage, args, stdout, stderr)
	if code >= 0 {
		return code
	}
	cf.load(fs)
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(stderr, "publish", errors.New("want TYPE and at most one FILE"))
	}
	typ := events.Type(pos[0])
	lim := events.Limits{MaxBytes: *maxBytes, Now: time.Now, MaxFuture: events.DefaultLimits().MaxFuture}
	if err := checkType(typ, lim); err != nil {
		return usageError(stderr, "publish", err)
	}
	subjects, err := events.NewSubjects(cf.prefix)
	if err != nil {
		return usageError(stderr, "publish", fmt.Errorf("--subject-prefix: %w", err))
	}
	t := time.Now()
	if *at != "" {
		if t, err = time.Parse(time.RFC3339Nano, *at); err != nil {
			return usageError(stderr, "publish", fmt.Errorf("--time %q is not an RFC 3339 time, like 2021-05-03T10:00:00+02:00", *at))
		}
	}
	if *id == "" {
		*id = newID()
	}

	in, name := stdin, "standard input"
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			fmt.Fprintf(stderr, "promemoria publish: %v\n", err)
			return 1
		}
		defer f.Close()
		in, name = f, pos[1]
	}
	if f, ok := in.(*os.File); ok && f == os.Stdin {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "promemoria publish: reading the event's data from the terminal; end it with Ctrl-D")
		}
	}
	data, err := io.ReadAll(io.LimitReader(in, int64(*maxBytes)+1))
	if err != nil {
		fmt.Fprintf(stderr, "promemoria publish: read %s: %v\n", name, err)
		return 1
	}
	var body []byte
	if len(data) > *maxBytes {
		err = &events.InvalidError{Reason: events.ReasonOversized, Field: "data", Msg: fmt.Sprintf("more than %d bytes, the limit is %d", *maxBytes, *maxBytes)}
	} else {
		body, err = buildEvent(typ, *source, *id, t, data, lim)
	}
	if err != nil {
		fmt.Fprintf(stderr, "promemoria publish: %s: refused, nothing published (the worker would dead-letter it): %v\n", name, err)
		return 1
	}

	nc, err := cf.connect("promemoria-cli publish")
	if err != nil {
		fmt.Fprintf(stderr, "promemoria publish: %v\n", err)
		return 1
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintf(stderr, "promemoria publish: %v\n", err)
		return 1
	}
	ack, err := publishRaw(ctx, js, subjects.Of(typ), *id, typ, body)
	if err != nil {
		fmt.Fprintf(stderr, "promemoria publish: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "published %s id %s source %s: stream %s sequence %d\n", typ, *id, *source, ack.Stream, ack.Sequence)
	if ack.Duplicate {
		fmt.Fprintln(stdout, "note: the stream already held an event with this id; it was not stored again")
	}
	return 0
}

// buildEvent wraps data in a CloudEvents envelope and validates the result
// with the worker's own decoder. Its error is the reason the worker would
// dead-letter the event with.
func buildEvent(typ events.Type, source, id string, t time.Time, data []byte, lim events.Limits) ([]byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		ie := &events.InvalidError{Reason: events.ReasonNotJSON, Field: "data", Err: err}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			ie.Msg = fmt.Sprintf("at byte %d", se.Offset)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			ie = &events.InvalidError{Reason: events.ReasonMissingField, Field: "data", Msg: "required: give a JSON object"}
		}
		return nil, ie
	}
	env := events.Envelope{
		SpecVersion: events.SpecVersion, ID: id, Source: source, Type: typ,
		Time: t, DataContentType: events.ContentType, Data: compact.Bytes(),
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if _, err := events.Decode(body, typ, lim); err != nil {
		return nil, err
	}
	return body, nil
}

// checkType returns the worker's unknown_type error if typ is not an input
// type.
func checkType(typ events.Type, lim events.Limits) error {
	if events.IsInput(typ) {
		return nil
	}
	stub, _ := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: "x", Source: "x", Type: typ,
		Time: time.Now(), DataContentType: events.ContentType, Data: json.RawMessage(`{}`)})
	if _, err := events.Decode(stub, "", lim); err != nil {
		return err
	}
	return fmt.Errorf("%q is not an input type", typ)
}

// publishRaw publishes an already encoded event and waits for the ack.
func publishRaw(ctx context.Context, js jetstream.JetStream, subject, id string, typ events.Type, body []byte) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(events.HeaderMsgID, id)
	msg.Header.Set("Ce-Type", string(typ))
	ack, err := js.PublishMsg(ctx, msg)
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("publish %s: no JetStream stream stores this subject: start promemoria first (it provisions its streams) or check --subject-prefix", subject)
	case err != nil:
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

func inputTypeNames() []string {
	out := make([]string, len(events.InputTypes))
	for i, t := range events.InputTypes {
		out[i] = string(t)
	}
	return out
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// clientFlags are the connection flags of the commands that talk to a
// running promemoria's NATS server. Each falls back to the environment
// variable serve uses (NATS_URL for the URL too), then to its default.
type clientFlags struct {
	url, prefix                        string
	user, password, token, creds, nkey string
	ca, cert, key                      string
	timeout                            time.Duration

	strs        map[string]*string // by flag name
	envs        map[string]string  // by flag name
	timeoutFlag *time.Duration
}

// DefaultClientURL is where the client commands look for NATS by default:
// the embedded server of "promemoria serve".
const DefaultClientURL = "nats://127.0.0.1:4222"

var clientSettings = []string{"nats_url", "subject_prefix", "nats_user", "nats_password", "nats_token",
	"nats_creds", "nats_nkey", "nats_ca", "nats_cert", "nats_key"}

func (c *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	c.strs, c.envs = map[string]*string{}, map[string]string{}
	byName := map[string]config.Setting{}
	for _, s := range config.Settings() {
		byName[s.Name] = s
	}
	for _, name := range clientSettings {
		s := byName[name]
		def, help, env := s.Def, s.Help+" (env "+s.Env()+")", getenv(s.Env())
		if name == "nats_url" {
			def = DefaultClientURL
			help = "NATS server URL(s) of a running promemoria, comma-separated (env " + s.Env() + " or NATS_URL)"
			if env == "" {
				env = getenv("NATS_URL")
			}
		}
		c.envs[s.Flag()] = env
		// The environment is applied in load, not as the flag's default, so
		// that --help never prints a secret taken from it.
		c.strs[s.Flag()] = fs.String(s.Flag(), def, help)
	}
	c.timeoutFlag = fs.Duration("timeout", 10*time.Second, "how long to wait for NATS")
}

// load sets c from the parsed flags: a flag given on the command line wins
// over its environment variable, which wins over the default.
func (c *clientFlags) load(fs *flag.FlagSet) {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	get := func(name string) string {
		flagName := strings.ReplaceAll(name, "_", "-")
		if env := c.envs[flagName]; env != "" && !explicit[flagName] {
			return env
		}
		return *c.strs[flagName]
	}
	c.url, c.prefix = get("nats_url"), get("subject_prefix")
	c.user, c.password, c.token = get("nats_user"), get("nats_password"), get("nats_token")
	c.creds, c.nkey = get("nats_creds"), get("nats_nkey")
	c.ca, c.cert, c.key = get("nats_ca"), get("nats_cert"), get("nats_key")
	c.timeout = *c.timeoutFlag
}

func (c *clientFlags) connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.Timeout(c.timeout)}
	if c.user != "" {
		opts = append(opts, nats.UserInfo(c.user, c.password))
	}
	if c.token != "" {
		opts = append(opts, nats.Token(c.token))
	}
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(c.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", c.nkey, err)
		}
		opts = append(opts, o)
	}
	if c.ca != "" {
		opts = append(opts, nats.RootCAs(c.ca))
	}
	if c.cert != "" || c.key != "" {
		if c.cert == "" || c.key == "" {
			return nil, errors.New("--nats-cert and --nats-key go together: give both or neither")
		}
		opts = append(opts, nats.ClientCert(c.cert, c.key))
	}
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", config.RedactURL(c.url), err)
	}
	return nc, nil
}

// newFlagSet returns a flag set that reports errors to its caller only.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseCommand parses args, flags and positional arguments in any order
// ("--" ends the flags). It returns the positional arguments and -1, or an
// exit code: 0 after --help (usage on stdout), 2 on a usage error.
func parseCommand(fs *flag.FlagSet, name, usage string, args []string, stdout, stderr io.Writer) ([]string, int) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fmt.Fprintln(stdout, "\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
			return nil, 0
		}
		if err != nil {
			return nil, usageError(stderr, name, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, -1
}

func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "promemoria %s: %v\nRun \"promemoria %s --help\" for usage.\n", name, err, name)
	return 2
}

func envInt(getenv func(string) string, key string, def int) int {
	var n int
	if v := getenv(key); v != "" {
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return def
}
