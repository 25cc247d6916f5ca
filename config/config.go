// Package config turns flags, environment variables and an optional YAML
// file into promemoria's settings. Precedence is flag > environment > file >
// default, every setting has all three spellings (--repeat-interval,
// PROMEMORIA_REPEAT_INTERVAL, repeat_interval), and a bad value stops
// start-up with an error that names the setting and says what to write.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the timezone setting works where the system has no zoneinfo

	"go.yaml.in/yaml/v3"

	"github.com/promemoria/promemoria/probe"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/contribution"
)

// Config is the effective configuration of the service.
type Config struct {
	NATSURL             string
	Listen              string
	DataDir             string
	EmbeddedConfig      string
	JetStreamMaxMemory  int64
	JetStreamMaxStore   int64
	SyncAlways          bool
	SubjectPrefix       string
	Settle              time.Duration
	RepeatInterval      time.Duration
	EscalateBefore      time.Duration
	SweepGrace          time.Duration
	DefaultCIGService   string
	ContributionService string
	Services            []string
	Concurrency         int
	BatchSize           int
	TimerResolution     time.Duration
	LeaseTTL            time.Duration
	MaxAttempts         int
	DedupWindow         time.Duration
	Replicas            int
	MaxEventBytes       int
	HTTPListen          string
	// HTTPAuth is the file of the HTTP credentials (user:bcrypt-hash and
	// token:sha256-hex lines); HTTPAuthAll also guards /healthz, /readyz
	// and /metrics with it.
	HTTPAuth     string
	HTTPAuthAll  bool
	LogLevel     string
	LogFormat    string
	NATSUser     string
	NATSPassword string
	NATSToken    string
	NATSCreds    string
	NATSNKey     string
	NATSCA       string
	NATSCert     string
	NATSKey      string
	DrainTimeout time.Duration

	// ContributionSchedules are the contribution tables, checked by
	// contribution.NewTable.
	ContributionSchedules []contribution.Schedule
	// OfficeHours is when messages go out, in the canonical form of
	// calendar.Hours ("always" or like "Mon-Fri 09:00-18:00"); Hours is it
	// parsed.
	OfficeHours string
	Hours       calendar.Hours
	// Timezone is the IANA name of the time zone of office hours and closure
	// days; Location is it loaded.
	Timezone string
	Location *time.Location
	// ClosureDays are the office's own closure days, dates or yearly days.
	ClosureDays []calendar.Closure
	// TemplatesDir overrides the embedded message templates; empty: none.
	TemplatesDir string
	// BidderServices are the services bidders need, for the art. 25 advice.
	BidderServices []string
	// AdviceMinOverlap is the least overlap of outages with an offer
	// period that gives an art. 25 advice.
	AdviceMinOverlap time.Duration
	// Probes check ANAC's services over HTTP and publish their outages;
	// validated, with ProbeInterval and ProbeTimeout as their defaults.
	Probes                        []probe.Spec
	ProbeInterval, ProbeTimeout   time.Duration
	ProbeFailures, ProbeSuccesses int

	// Delivery: reminders and advices by e-mail (SMTPURL, SMTPFrom…) and
	// webhook (WebhookURL, WebhookSecret), grouped per recipient within
	// DigestWait, retried DeliveryMaxAttempts times with a backoff from
	// DeliveryBackoff doubling up to DeliveryBackoffMax.
	SMTPURL             string
	SMTPFrom            string
	SMTPReplyTo         string
	SMTPTLSInsecure     bool
	WebhookURL          string
	WebhookSecret       string
	DigestWait          time.Duration
	DeliveryMaxAttempts int
	DeliveryBackoff     time.Duration
	DeliveryBackoffMax  time.Duration
	DeliveryTimeout     time.Duration

	// File is the configuration file read, if any.
	File string
	// PrintConfig asks serve to print the effective config and exit.
	PrintConfig bool
}

// Setting describes one configuration key.
type Setting struct {
	// Name is the key as written in the file: snake_case.
	Name   string
	Help   string
	Def    string
	Secret bool
	// raw settings hold JSON, printed as is rather than quoted.
	raw bool
	set func(c *Config, v string) error
	get func(c *Config) string
}

// Flag returns the setting's flag name.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Name, "_", "-") }

// Env returns the setting's environment variable.
func (s Setting) Env() string { return "PROMEMORIA_" + strings.ToUpper(s.Name) }

var serviceRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func str(p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error { *p(c) = v; return nil }, func(c *Config) string { return *p(c) }
}

func dur(min time.Duration, p func(*Config) *time.Duration) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration: write it like 90s, 5m, 24h", v)
			}
			if d < min {
				return fmt.Errorf("%s is too short: the minimum is %s", d, min)
			}
			*p(c) = d
			return nil
		}, func(c *Config) string {
			return p(c).String()
		}
}

func integer(min, max int64, p func(*Config) *int64) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			if n < min || n > max {
				return fmt.Errorf("%d is out of range: want %d to %d", n, min, max)
			}
			*p(c) = n
			return nil
		}, func(c *Config) string {
			return strconv.FormatInt(*p(c), 10)
		}
}

func boolean(p func(*Config) *bool) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*p(c) = b
			return nil
		}, func(c *Config) string {
			return strconv.FormatBool(*p(c))
		}
}

func service(p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
		if !serviceRe.MatchString(v) {
			return fmt.Errorf("%q is not a service name: lower-case letters, digits, _ and -, like pcp or smartcig", v)
		}
		*p(c) = v
		return nil
	}, func(c *Config) string { return *p(c) }
}

// serviceList makes the setter and getter of a comma-separated list of service
// names; duplicates are dropped.
func serviceList(p func(*Config) *[]string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
		var out []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if !serviceRe.MatchString(s) {
				return fmt.Errorf("%q is not a service name: write comma-separated names of lower-case letters, digits, _ and -, like payments,fvoe", s)
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		*p(c) = out
		return nil
	}, func(c *Config) string { return strings.Join(*p(c), ",") }
}

// schedulesExample is what an error about contribution_schedules suggests.
const schedulesExample = `[{"id":"anac-2023","from":"2023-04-01","brackets":[{"from_cents":0,"amount_cents":0},{"from_cents":15000000,"amount_cents":1800}]}]`

// scheduleInput is a contribution.Schedule as written, with pointers to tell a
// bracket's missing amount from a 0 one.
type scheduleInput struct {
	ID       string `json:"id"`
	From     string `json:"from"`
	Brackets []struct {
		FromCents   *int64 `json:"from_cents"`
		AmountCents *int64 `json:"amount_cents"`
	} `json:"brackets"`
}

// schedules sets ContributionSchedules from a JSON array of schedules, checked
// by contribution.NewTable. Unknown fields and brackets without from_cents or
// amount_cents are errors, so that a typo never becomes an exemption.
func schedules(c *Config, v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty: give a JSON array like " + schedulesExample + ", or a list of {id, from, brackets} in the YAML file")
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var in []scheduleInput
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("not a list of schedules {id, from, brackets: [{from_cents, amount_cents}]} (in JSON: %s): %w", schedulesExample, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected text after the JSON array: give one array of schedules")
	}
	out := make([]contribution.Schedule, len(in))
	for i, s := range in {
		out[i] = contribution.Schedule{ID: s.ID, From: s.From, Brackets: make([]contribution.Bracket, len(s.Brackets))}
		for j, b := range s.Brackets {
			switch {
			case b.FromCents == nil:
				return fmt.Errorf("schedule %d %q bracket %d has no from_cents: write the base amount in cents from which it applies, 0 for the first", i+1, s.ID, j+1)
			case b.AmountCents == nil:
				return fmt.Errorf("schedule %d %q bracket %d has no amount_cents: write the contribution in cents, 0 for exempt lots", i+1, s.ID, j+1)
			}
			out[i].Brackets[j] = contribution.Bracket{FromCents: *b.FromCents, AmountCents: *b.AmountCents}
		}
	}
	if _, err := contribution.NewTable(out); err != nil {
		return err
	}
	c.ContributionSchedules = out
	return nil
}

// schedulesText returns ContributionSchedules as compact JSON, which schedules
// reads back.
func schedulesText(c *Config) string {
	b, err := json.Marshal(c.ContributionSchedules)
	if err != nil {
		// A slice of structs of strings and integers always marshals.
		panic(fmt.Sprintf("config: marshal contribution_schedules: %v", err))
	}
	return string(b)
}

func hostPort(empty bool, p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
		if v == "" && empty {
			*p(c) = v
			return nil
		}
		if _, port, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not host:port, like 127.0.0.1:4222", v)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q has a bad port", v)
		}
		*p(c) = v
		return nil
	}, func(c *Config) string { return *p(c) }
}

func mk(name, def, help string, secret bool, f func(*Config, string) error, g func(*Config) string) Setting {
	return Setting{Name: name, Def: def, Help: help, Secret: secret, set: f, get: g}
}

// Settings returns every setting, in the order --help lists them.
func Settings() []Setting {
	var s []Setting
	add := func(name, def, help string, secret bool, f func(*Config, string) error, g func(*Config) string) {
		s = append(s, mk(name, def, help, secret, f, g))
	}
	f, g := str(func(c *Config) *string { return &c.NATSURL })
	setURL := f
	add("nats_url", "", "NATS server URL(s), comma-separated; empty runs an embedded server (also NATS_URL)", true, func(c *Config, v string) error {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" && !strings.Contains(u, "://") && !strings.Contains(u, ":") {
				return fmt.Errorf("%q is not a NATS URL: write it like nats://host:4222", u)
			}
		}
		return setURL(c, v)
	}, g)
	f, g = hostPort(true, func(c *Config) *string { return &c.Listen })
	add("listen", "127.0.0.1:4222", "client address of the embedded NATS server; empty: in-process only", false, f, g)
	f, g = str(func(c *Config) *string { return &c.DataDir })
	setDir := f
	add("data_dir", "./promemoria-data", "where the embedded server keeps JetStream data", false, func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("must not be empty: give a directory, like /var/lib/promemoria")
		}
		return setDir(c, v)
	}, g)
	f, g = str(func(c *Config) *string { return &c.EmbeddedConfig })
	add("embedded_config", "", "nats-server configuration file for the embedded server (auth, TLS)", false, f, g)
	f, g = integer(-1, 1<<50, func(c *Config) *int64 { return &c.JetStreamMaxMemory })
	add("jetstream_max_memory", "268435456", "embedded JetStream memory limit in bytes", false, f, g)
	f, g = integer(-1, 1<<60, func(c *Config) *int64 { return &c.JetStreamMaxStore })
	add("jetstream_max_store", "10737418240", "embedded JetStream file storage limit in bytes", false, f, g)
	f, g = boolean(func(c *Config) *bool { return &c.SyncAlways })
	add("sync_always", "false", "embedded server fsyncs every write (slower, survives power loss)", false, f, g)
	f, g = str(func(c *Config) *string { return &c.SubjectPrefix })
	setPrefix := f
	add("subject_prefix", "procurement", "first tokens of every subject", false, func(c *Config, v string) error {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`).MatchString(v) {
			return fmt.Errorf("%q is not a subject prefix: dot-separated tokens of letters, digits, _ and -", v)
		}
		return setPrefix(c, v)
	}, g)
	f, g = dur(0, func(c *Config) *time.Duration { return &c.Settle })
	add("settle", "5m", "how long a service must stay up before its gaps are reminded", false, f, g)
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.RepeatInterval })
	add("repeat_interval", "24h", "time between two reminders of an open gap", false, f, g)
	f, g = dur(0, func(c *Config) *time.Duration { return &c.EscalateBefore })
	add("escalate_before", "48h", "how long before a deadline the escalation goes to the RUP", false, f, g)
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.SweepGrace })
	add("sweep_grace", "30s", "delay of the second pass over a restored service's gaps", false, f, g)
	f, g = service(func(c *Config) *string { return &c.DefaultCIGService })
	add("default_cig_service", "pcp", "service that issues a lot's CIG when the tender does not say", false, f, g)
	f, g = service(func(c *Config) *string { return &c.ContributionService })
	add("contribution_service", "payments", "service contribution gaps wait for", false, f, g)
	fl, gl := serviceList(func(c *Config) *[]string { return &c.Services })
	add("services", "smartcig,simog,pcp,payments,fvoe,bdncp,ausa", "what a portal event with no services list means", false, fl, gl)
	fl, gl = serviceList(func(c *Config) *[]string { return &c.BidderServices })
	add("bidder_services", "payments,fvoe", "services bidders need: their outages during an offer period give the art. 25 advice (none: only the lots' CIG services count)", false, func(c *Config, v string) error {
		if strings.TrimSpace(v) == "none" {
			c.BidderServices = []string{}
			return nil
		}
		return fl(c, v)
	}, func(c *Config) string {
		if c.BidderServices != nil && len(c.BidderServices) == 0 {
			return "none"
		}
		return gl(c)
	})
	f, g = dur(0, func(c *Config) *time.Duration { return &c.AdviceMinOverlap })
	add("advice_min_overlap", "0s", "least total outage within an offer period that gives an art. 25 advice (0s: any)", false, f, g)
	s = append(s, Setting{Name: "probes", Def: "", raw: true, set: setProbes, get: probesText,
		Help: `HTTP checks of ANAC's services that publish their outages: service=URL,… (or --probe service=URL, repeatable); in the file a list of {service, url, method, expect_status, expect_body, interval, timeout}`})
	f, g = dur(probe.MinInterval, func(c *Config) *time.Duration { return &c.ProbeInterval })
	add("probe_interval", "30s", "time between two checks of a probed service", false, f, g)
	f, g = dur(100*time.Millisecond, func(c *Config) *time.Duration { return &c.ProbeTimeout })
	add("probe_timeout", "5s", "time a probe's check may take before it counts as failed", false, f, g)
	var pf, ps int64
	add("probe_failures", "3", "consecutive failed checks before a probe publishes portal.down", false, func(c *Config, v string) error {
		f, _ := integer(1, 100, func(*Config) *int64 { return &pf })
		err := f(c, v)
		c.ProbeFailures = int(pf)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.ProbeFailures) })
	add("probe_successes", "2", "consecutive good checks before a probe publishes portal.up", false, func(c *Config, v string) error {
		f, _ := integer(1, 100, func(*Config) *int64 { return &ps })
		err := f(c, v)
		c.ProbeSuccesses = int(ps)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.ProbeSuccesses) })
	def := schedulesText(&Config{ContributionSchedules: contribution.DefaultSchedules()})
	s = append(s, Setting{Name: "contribution_schedules", Def: def, raw: true, set: schedules, get: schedulesText,
		Help: "contribution tables as a JSON array of {id, from (Europe/Rome date), brackets: [{from_cents, amount_cents}]}, sorted by from; a list in the YAML file " +
			"(default: anac-2021 from 2021-01-01 and anac-2023 from 2023-04-01, shown by --print-config)"})
	var ci, ma, rp, mb int64
	_ = ci
	add("concurrency", "4", "lanes of the leading worker: each takes its share of the tenders' events in batches, so one plans while another waits for the broker", false, func(c *Config, v string) error {
		f, _ := integer(1, 64, func(*Config) *int64 { return &ci })
		err := f(c, v)
		c.Concurrency = int(ci)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.Concurrency) })
	var bs int64
	add("batch_size", "500", "input events a lane takes, plans and commits together at most", false, func(c *Config, v string) error {
		f, _ := integer(1, 10000, func(*Config) *int64 { return &bs })
		err := f(c, v)
		c.BatchSize = int(bs)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.BatchSize) })
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.TimerResolution })
	add("timer_resolution", "1m", "width of the time buckets gaps fall due in: one timer per service and bucket wakes its gaps (at most a tenth of repeat_interval)", false, f, g)
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.LeaseTTL })
	add("lease_ttl", "10s", "how long the leading worker's lease lasts unless renewed: a replica takes over about that long after the leader stops", false, f, g)
	add("max_attempts", "10", "deliveries of a failing message before it is dead-lettered", false, func(c *Config, v string) error {
		f, _ := integer(1, 1000, func(*Config) *int64 { return &ma })
		err := f(c, v)
		c.MaxAttempts = int(ma)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.MaxAttempts) })
	f, g = dur(time.Minute, func(c *Config) *time.Duration { return &c.DedupWindow })
	add("dedup_window", "24h", "duplicate window of the output stream", false, f, g)
	add("replicas", "1", "replication factor of streams and buckets (3 on a cluster)", false, func(c *Config, v string) error {
		f, _ := integer(1, 5, func(*Config) *int64 { return &rp })
		err := f(c, v)
		c.Replicas = int(rp)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.Replicas) })
	add("max_event_bytes", "65536", "largest input event accepted", false, func(c *Config, v string) error {
		f, _ := integer(1024, 8<<20, func(*Config) *int64 { return &mb })
		err := f(c, v)
		c.MaxEventBytes = int(mb)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.MaxEventBytes) })
	f, g = hostPort(true, func(c *Config) *string { return &c.HTTPListen })
	add("http_listen", "127.0.0.1:8080", "address of the web console, /v1, /healthz, /readyz and /metrics; empty disables", false, f, g)
	f, g = str(func(c *Config) *string { return &c.HTTPAuth })
	add("http_auth", "", "file of the HTTP credentials: lines user:<bcrypt hash> (basic authentication) or token:<sha256 hex of a bearer token>; required for the console and /v1 when http_listen is not a loopback address", false, f, g)
	f, g = boolean(func(c *Config) *bool { return &c.HTTPAuthAll })
	add("http_auth_all", "false", "also require the http_auth credentials for /healthz, /readyz and /metrics", false, f, g)
	add("log_level", "info", "debug, info, warn or error", false, func(c *Config, v string) error {
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
			return fmt.Errorf("%q: want debug, info, warn or error", v)
		}
		c.LogLevel = v
		return nil
	}, func(c *Config) string { return c.LogLevel })
	add("log_format", "json", "json or console", false, func(c *Config, v string) error {
		if v != "json" && v != "console" {
			return fmt.Errorf("%q: want json or console", v)
		}
		c.LogFormat = v
		return nil
	}, func(c *Config) string { return c.LogFormat })
	f, g = str(func(c *Config) *string { return &c.NATSUser })
	add("nats_user", "", "user name for an external NATS", false, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSPassword })
	add("nats_password", "", "password for an external NATS", true, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSToken })
	add("nats_token", "", "token for an external NATS", true, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSCreds })
	add("nats_creds", "", "credentials file (JWT and NKey seed) for an external NATS", false, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSNKey })
	add("nats_nkey", "", "NKey seed file for an external NATS", false, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSCA })
	add("nats_ca", "", "CA certificate file to verify the NATS server", false, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSCert })
	add("nats_cert", "", "client certificate file (mTLS)", false, f, g)
	f, g = str(func(c *Config) *string { return &c.NATSKey })
	add("nats_key", "", "client key file (mTLS)", false, f, g)
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.DrainTimeout })
	add("drain_timeout", "30s", "how long shutdown waits for messages in flight", false, f, g)
	add("timezone", "Europe/Rome", "IANA time zone of office hours and closure days", false, func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("must not be empty: write an IANA time zone like Europe/Rome")
		}
		loc, err := time.LoadLocation(v)
		if err != nil {
			return fmt.Errorf("%q is not a time zone: write an IANA name like Europe/Rome: %w", v, err)
		}
		c.Timezone, c.Location = v, loc
		return nil
	}, func(c *Config) string { return c.Timezone })
	add("office_hours", "Mon-Fri 09:00-18:00", "when reminders go out, like Mon-Fri 09:00-18:00 or Mon-Fri 09:00-13:00,14:00-18:00; always: at any time", false, func(c *Config, v string) error {
		h, err := calendar.ParseHours(v)
		if err != nil {
			return err
		}
		c.OfficeHours, c.Hours = h.String(), h
		return nil
	}, func(c *Config) string { return c.OfficeHours })
	add("closure_days", "", "the office's closure days besides national holidays, comma-separated: dates like 2026-06-29 or yearly days like 06-29", false, func(c *Config, v string) error {
		var out []calendar.Closure
		if strings.TrimSpace(v) == "" {
			c.ClosureDays = out
			return nil
		}
		for _, s := range strings.Split(v, ",") {
			d, err := calendar.ParseClosure(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%w; separate several with commas, like 2026-06-29,06-29", err)
			}
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
		c.ClosureDays = out
		return nil
	}, func(c *Config) string {
		parts := make([]string, len(c.ClosureDays))
		for i, d := range c.ClosureDays {
			parts[i] = d.String()
		}
		return strings.Join(parts, ",")
	})
	f, g = str(func(c *Config) *string { return &c.TemplatesDir })
	add("templates_dir", "", "directory of message templates overriding the built-in texts; empty: the built-in texts", false, f, g)
	s = append(s, deliverySettings()...)
	return s
}

// deliverySettings are the settings of the delivery stage: receivers,
// grouping and retries.
func deliverySettings() []Setting {
	var s []Setting
	add := func(name, def, help string, secret bool, f func(*Config, string) error, g func(*Config) string) {
		s = append(s, mk(name, def, help, secret, f, g))
	}
	add("smtp_url", "", "SMTP server reminders are e-mailed through: smtp://user:pass@host:587 (STARTTLS when offered) or smtps://user:pass@host:465 (implicit TLS, as PEC providers use); empty: no e-mail", true, func(c *Config, v string) error {
		if v = strings.TrimSpace(v); v != "" {
			if err := checkSMTPURL(v); err != nil {
				return err
			}
		}
		c.SMTPURL = v
		return nil
	}, func(c *Config) string { return c.SMTPURL })
	add("smtp_from", "", "sender of the e-mails (required with smtp_url), like \"Promemoria gare <promemoria@comune.example.it>\" or a PEC address", false, func(c *Config, v string) error {
		if v = strings.TrimSpace(v); v != "" {
			if _, err := mail.ParseAddress(v); err != nil {
				return fmt.Errorf("%q is not an e-mail address: write it like promemoria@comune.example.it or \"Ufficio gare <gare@comune.example.it>\"", v)
			}
		}
		c.SMTPFrom = v
		return nil
	}, func(c *Config) string { return c.SMTPFrom })
	add("smtp_reply_to", "", "Reply-To of the e-mails; empty: none", false, func(c *Config, v string) error {
		if v = strings.TrimSpace(v); v != "" {
			if _, err := mail.ParseAddress(v); err != nil {
				return fmt.Errorf("%q is not an e-mail address: write it like ufficio.gare@comune.example.it", v)
			}
		}
		c.SMTPReplyTo = v
		return nil
	}, func(c *Config) string { return c.SMTPReplyTo })
	f, g := boolean(func(c *Config) *bool { return &c.SMTPTLSInsecure })
	add("smtp_tls_insecure", "false", "accept any TLS certificate from the SMTP server: for tests only, never in production", false, f, g)
	add("webhook_url", "", "URL each reminder and advice is POSTed to as a CloudEvent (JSON), signed with webhook_secret; empty: no webhook", true, func(c *Config, v string) error {
		if v = strings.TrimSpace(v); v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) URL: write it like https://piattaforma.example.it/hooks/promemoria", probe.RedactURL(v))
			}
		}
		c.WebhookURL = v
		return nil
	}, func(c *Config) string { return c.WebhookURL })
	fs, gs := str(func(c *Config) *string { return &c.WebhookSecret })
	add("webhook_secret", "", "secret of the webhook's signature, X-Promemoria-Signature: sha256=<hex HMAC-SHA256 of the body>; at least 16 characters, required with webhook_url", true, fs, gs)
	f, g = dur(0, func(c *Config) *time.Duration { return &c.DigestWait })
	add("digest_wait", "2m", "how long an e-mail waits for more reminders and advices to the same recipient, sent together as one digest (0s: each alone)", false, f, g)
	var ma int64
	add("delivery_max_attempts", "10", "tries of a delivery that fails temporarily before delivery.failed is published", false, func(c *Config, v string) error {
		f, _ := integer(1, 1000, func(*Config) *int64 { return &ma })
		err := f(c, v)
		c.DeliveryMaxAttempts = int(ma)
		return err
	}, func(c *Config) string { return strconv.Itoa(c.DeliveryMaxAttempts) })
	f, g = dur(10*time.Millisecond, func(c *Config) *time.Duration { return &c.DeliveryBackoff })
	add("delivery_backoff", "10s", "wait before the second try of a failed delivery; it doubles at each try up to delivery_backoff_max", false, f, g)
	f, g = dur(10*time.Millisecond, func(c *Config) *time.Duration { return &c.DeliveryBackoffMax })
	add("delivery_backoff_max", "10m", "longest wait between two tries of a delivery", false, f, g)
	f, g = dur(time.Second, func(c *Config) *time.Duration { return &c.DeliveryTimeout })
	add("delivery_timeout", "30s", "how long one try (an SMTP session, a webhook call) may take", false, f, g)
	return s
}

// checkSMTPURL checks an smtp_url: scheme smtp or smtps, a host, a port if
// any between 1 and 65535, and no path.
func checkSMTPURL(v string) error {
	u, err := url.Parse(v)
	example := "write it like smtp://user:password@mail.example.it:587 or smtps://user:password@smtps.pec.example.it:465"
	if err != nil {
		return fmt.Errorf("not a URL (%s): %w", example, errors.New(strings.ReplaceAll(err.Error(), v, RedactURL(v))))
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return fmt.Errorf("scheme %q: want smtp or smtps; %s", u.Scheme, example)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("no host: %s", example)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q: %s", p, example)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("unexpected path or query: %s", example)
	}
	return nil
}

// DeliveryEnabled reports whether a receiver is configured: the delivery
// stage then runs inside serve, and notify can run.
func (c *Config) DeliveryEnabled() bool { return c.SMTPURL != "" || c.WebhookURL != "" }

// listFlag collects the values of a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// flagValue holds a flag's text; boolean settings accept a bare --flag.
type flagValue struct {
	v      string
	isBool bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(v string) error { f.v = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// Error is a configuration error: it names the setting and where its value
// came from.
type Error struct {
	Setting string
	Origin  string
	Err     error
}

func (e *Error) Error() string { return fmt.Sprintf("config %s (%s): %v", e.Setting, e.Origin, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Load builds the configuration from args (without the command name),
// getenv and, if --config or PROMEMORIA_CONFIG names one, a YAML file.
// It returns flag.ErrHelp if --help was asked; usage is written to out.
func Load(name string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	settings := Settings()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	flags := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := &flagValue{v: s.Def, isBool: s.Def == "true" || s.Def == "false"}
		if s.raw {
			// A structured default is too long for --help; Help describes it.
			v.v = ""
		}
		fs.Var(v, s.Flag(), s.Help+" (env "+s.Env()+")")
		flags[s.Name] = &v.v
	}
	var probeFlags listFlag
	fs.Var(&probeFlags, "probe", "probe a service: service=URL (repeatable; replaces --probes and PROMEMORIA_PROBES)")
	file := fs.String("config", getenv("PROMEMORIA_CONFIG"), "YAML file with the same keys as the flags (env PROMEMORIA_CONFIG)")
	printCfg := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: promemoria %s [flags]\n\nFlags (precedence: flag > environment > config file > default):\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: %s takes only flags", fs.Arg(0), name)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	c := &Config{File: *file, PrintConfig: *printCfg}
	var fileVals map[string]string
	if *file != "" {
		var err error
		if fileVals, err = readFile(*file, settings); err != nil {
			return nil, err
		}
	}
	for _, s := range settings {
		v, origin := s.Def, "default"
		if fv, ok := fileVals[s.Name]; ok {
			v, origin = fv, "file "+*file+" key "+s.Name
		}
		env := getenv(s.Env())
		if s.Name == "nats_url" && env == "" {
			if e := getenv("NATS_URL"); e != "" {
				env, origin = e, "env NATS_URL"
			}
		} else if env != "" {
			origin = "env " + s.Env()
		}
		if env != "" {
			v = env
		}
		if explicit[s.Flag()] {
			v, origin = *flags[s.Name], "flag --"+s.Flag()
		}
		if s.Name == "probes" && len(probeFlags) > 0 {
			// Each --probe is one service=URL: a URL may hold commas.
			c.Probes = nil
			if err := addProbePairs(c, probeFlags); err != nil {
				return nil, &Error{Setting: s.Name, Origin: "flag --probe", Err: err}
			}
			continue
		}
		if err := s.set(c, v); err != nil {
			return nil, &Error{Setting: s.Name, Origin: origin, Err: err}
		}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) check() error {
	if err := c.checkProbes(); err != nil {
		return err
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		return &Error{Setting: "nats_cert", Origin: "nats_cert and nats_key", Err: errors.New("give both the client certificate and its key, or neither")}
	}
	if c.NATSCreds != "" && c.NATSNKey != "" {
		return &Error{Setting: "nats_creds", Origin: "nats_creds and nats_nkey", Err: errors.New("give a credentials file or an NKey seed, not both")}
	}
	if c.NATSURL == "" && (c.NATSUser != "" || c.NATSPassword != "" || c.NATSToken != "" || c.NATSCreds != "" || c.NATSNKey != "") {
		return &Error{Setting: "nats_url", Origin: "credentials given", Err: errors.New("NATS credentials need an external server: set nats_url, or configure the embedded server with embedded_config")}
	}
	for _, p := range []struct{ name, path string }{{"nats_creds", c.NATSCreds}, {"nats_nkey", c.NATSNKey}, {"nats_ca", c.NATSCA}, {"nats_cert", c.NATSCert}, {"nats_key", c.NATSKey}, {"embedded_config", c.EmbeddedConfig}, {"http_auth", c.HTTPAuth}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return &Error{Setting: p.name, Origin: p.path, Err: fmt.Errorf("cannot read the file: %w", err)}
		}
	}
	if err := c.checkDelivery(); err != nil {
		return err
	}
	if c.HTTPAuthAll && c.HTTPAuth == "" {
		return &Error{Setting: "http_auth_all", Origin: "http_auth empty", Err: errors.New("http_auth_all guards the health endpoints with http_auth: set http_auth to the credentials file too")}
	}
	if c.TemplatesDir != "" {
		fi, err := os.Stat(c.TemplatesDir)
		if err != nil {
			return &Error{Setting: "templates_dir", Origin: c.TemplatesDir, Err: fmt.Errorf("cannot read the directory (give an existing one, or leave it empty for the built-in texts): %w", err)}
		}
		if !fi.IsDir() {
			return &Error{Setting: "templates_dir", Origin: c.TemplatesDir, Err: errors.New("not a directory: give the directory of the message templates, or leave it empty for the built-in texts")}
		}
	}
	return nil
}

// checkDelivery checks the settings of the delivery stage together.
func (c *Config) checkDelivery() error {
	if c.SMTPURL != "" && c.SMTPFrom == "" {
		return &Error{Setting: "smtp_from", Origin: "smtp_url given", Err: errors.New("e-mails need a sender: set smtp_from to the address they come from, like promemoria@comune.example.it")}
	}
	if c.WebhookURL != "" && len(c.WebhookSecret) < 16 {
		return &Error{Setting: "webhook_secret", Origin: "webhook_url given", Err: errors.New("webhooks are signed: set webhook_secret to a random string of at least 16 characters, shared with the receiving platform")}
	}
	if c.DeliveryBackoffMax < c.DeliveryBackoff {
		return &Error{Setting: "delivery_backoff_max", Origin: "delivery_backoff " + c.DeliveryBackoff.String(), Err: fmt.Errorf("%s is shorter than delivery_backoff: give at least %s", c.DeliveryBackoffMax, c.DeliveryBackoff)}
	}
	return nil
}

// readFile reads the YAML file into the text of each key: a scalar as written,
// a list of scalars joined with commas, and a list or mapping holding lists or
// mappings, or any list for a raw setting, as compact JSON.
func readFile(path string, settings []Setting) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Setting: "config", Origin: path, Err: err}
	}
	var raw map[string]yamlValue
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, &Error{Setting: "config", Origin: path, Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	known := map[string]Setting{}
	for _, s := range settings {
		known[s.Name] = s
	}
	out := map[string]string{}
	for k, yv := range raw {
		s, ok := known[k]
		if !ok {
			return nil, &Error{Setting: k, Origin: "file " + path, Err: errors.New("unknown key (keys are the flag names with _ for -, like repeat_interval)")}
		}
		switch x := yv.v.(type) {
		case []any:
			if !s.raw && !structured(x) {
				parts := make([]string, len(x))
				for i, p := range x {
					parts[i] = fmt.Sprint(p)
				}
				out[k] = strings.Join(parts, ",")
				break
			}
			b, err := json.Marshal(x)
			if err != nil {
				return nil, &Error{Setting: k, Origin: "file " + path + " key " + k, Err: fmt.Errorf("cannot read the list: %w", err)}
			}
			out[k] = string(b)
		case map[string]any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, &Error{Setting: k, Origin: "file " + path + " key " + k, Err: fmt.Errorf("cannot read the mapping: %w", err)}
			}
			out[k] = string(b)
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out, nil
}

// yamlValue is a value of the configuration file as plain Go values: nil,
// scalars, []any and map[string]any. Timestamps keep their text, so that
// from: 2023-04-01 reads as the string "2023-04-01", not as a time.Time.
type yamlValue struct{ v any }

// UnmarshalYAML implements yaml.Unmarshaler.
func (y *yamlValue) UnmarshalYAML(n *yaml.Node) error {
	v, err := plain(n)
	if err != nil {
		return err
	}
	y.v = v
	return nil
}

// plain converts a YAML node into plain Go values, resolving aliases and merge
// keys; a mapping's keys must be scalars.
func plain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return plain(n.Alias)
	case yaml.ScalarNode:
		if n.ShortTag() == "!!timestamp" {
			return n.Value, nil
		}
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := plain(c)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		var explicit [][2]*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() != "!!merge" {
				explicit = append(explicit, [2]*yaml.Node{k, v})
				continue
			}
			// Merged mappings give defaults that explicit keys override.
			m, err := plain(v)
			if err != nil {
				return nil, err
			}
			merged := []any{m}
			if list, ok := m.([]any); ok {
				merged = list
			}
			for _, mm := range merged {
				mapping, ok := mm.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("line %d: << must merge a mapping", k.Line)
				}
				for mk, mv := range mapping {
					if _, set := out[mk]; !set {
						out[mk] = mv
					}
				}
			}
		}
		for _, kv := range explicit {
			if kv[0].Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a plain name", kv[0].Line)
			}
			v, err := plain(kv[1])
			if err != nil {
				return nil, err
			}
			out[kv[0].Value] = v
		}
		return out, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// structured reports whether a YAML list holds mappings or lists, which are kept
// as JSON, rather than only scalars, which are joined with commas.
func structured(list []any) bool {
	for _, v := range list {
		switch v.(type) {
		case []any, map[string]any:
			return true
		}
	}
	return false
}

// Print writes the effective configuration as YAML-like key: value lines,
// secrets redacted; structured values such as contribution_schedules are
// written as compact JSON, which YAML reads too.
func (c *Config) Print(w io.Writer) {
	for _, s := range Settings() {
		v := s.get(c)
		if s.raw {
			fmt.Fprintf(w, "%s: %s\n", s.Name, v)
			continue
		}
		if s.Secret && v != "" {
			v = "<redacted>"
			switch s.Name {
			case "nats_url", "smtp_url":
				v = RedactURL(s.get(c))
			case "webhook_url":
				v = probe.RedactURL(s.get(c))
			}
		}
		fmt.Fprintf(w, "%s: %q\n", s.Name, v)
	}
}

// RedactURL hides the password or token in NATS URLs.
func RedactURL(u string) string {
	return userInfoRe.ReplaceAllString(u, "${1}<redacted>@")
}

// userInfoRe matches the user:password@ part of each URL in a
// comma-separated list, with or without a scheme.
var userInfoRe = regexp.MustCompile(`(^|,\s*|://)[^@/,]*@`)

// probeInput is a probe.Spec as written in the file, durations as text.
type probeInput struct {
	Service      string     `json:"service"`
	URL          string     `json:"url"`
	Method       string     `json:"method,omitempty"`
	ExpectStatus statusText `json:"expect_status,omitempty"`
	ExpectBody   string     `json:"expect_body,omitempty"`
	Interval     string     `json:"interval,omitempty"`
	Timeout      string     `json:"timeout,omitempty"`
}

// statusText is an expected status as written: 200 (a YAML number) or
// "200-399".
type statusText string

// UnmarshalJSON accepts a number or a string.
func (s *statusText) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = statusText(n.String())
		return nil
	}
	var t string
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("expect_status: write a status like 200 or a range like 200-399: %w", err)
	}
	*s = statusText(t)
	return nil
}

// setProbes reads the probes: a JSON list of specs (the file's YAML list
// arrives as one) or service=URL pairs separated by commas. They are
// validated by check, once the default interval and timeout are known.
func setProbes(c *Config, v string) error {
	v = strings.TrimSpace(v)
	c.Probes = nil
	if v == "" {
		return nil
	}
	if strings.HasPrefix(v, "[") {
		var in []probeInput
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return fmt.Errorf("not a list of probes {service, url, method, expect_status, expect_body, interval, timeout}: %w", err)
		}
		for i, p := range in {
			spec := probe.Spec{Service: p.Service, URL: p.URL, Method: p.Method, ExpectStatus: string(p.ExpectStatus), ExpectBody: p.ExpectBody}
			for _, d := range []struct {
				name, text string
				to         *time.Duration
			}{{"interval", p.Interval, &spec.Interval}, {"timeout", p.Timeout, &spec.Timeout}} {
				if d.text == "" {
					continue
				}
				parsed, err := time.ParseDuration(d.text)
				if err != nil {
					return fmt.Errorf("probe %d (%s): %s %q is not a duration: write it like 30s or 2m: %w", i+1, p.Service, d.name, d.text, err)
				}
				*d.to = parsed
			}
			c.Probes = append(c.Probes, spec)
		}
		return nil
	}
	return addProbePairs(c, strings.Split(v, ","))
}

// addProbePairs adds the probes written as service=URL.
func addProbePairs(c *Config, pairs []string) error {
	for _, pair := range pairs {
		service, url, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || service == "" || url == "" {
			return fmt.Errorf("%q: write service=URL, like pcp=https://example.org/status", probe.RedactURL(pair))
		}
		c.Probes = append(c.Probes, probe.Spec{Service: strings.TrimSpace(service), URL: strings.TrimSpace(url)})
	}
	return nil
}

// probesText writes the probes as a JSON list, as --print-config shows them.
func probesText(c *Config) string {
	if len(c.Probes) == 0 {
		return ""
	}
	out := make([]probeInput, len(c.Probes))
	for i, p := range c.Probes {
		out[i] = probeInput{Service: p.Service, URL: probe.RedactURL(p.URL), Method: p.Method, ExpectStatus: statusText(p.ExpectStatus), ExpectBody: p.ExpectBody}
		if p.Interval > 0 {
			out[i].Interval = p.Interval.String()
		}
		if p.Timeout > 0 {
			out[i].Timeout = p.Timeout.String()
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(fmt.Sprintf("config: marshal probes: %v", err))
	}
	return string(b)
}

// checkProbes validates the probes with their defaults; a service probed
// twice is an error.
func (c *Config) checkProbes() error {
	seen := map[string]bool{}
	for i, p := range c.Probes {
		v, err := p.Validate(c.ProbeInterval, c.ProbeTimeout)
		if err != nil {
			return &Error{Setting: "probes", Origin: fmt.Sprintf("probe %d", i+1), Err: err}
		}
		if seen[v.Service] {
			return &Error{Setting: "probes", Origin: fmt.Sprintf("probe %d", i+1), Err: fmt.Errorf("service %q is probed twice: give one probe per service", v.Service)}
		}
		seen[v.Service] = true
		c.Probes[i] = v
	}
	return nil
}
