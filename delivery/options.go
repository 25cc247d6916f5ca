package delivery

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
)

// Names of what the stage uses on JetStream. OutputStream is the
// contract's output stream (events/README.md), provisioned by the worker.
const (
	OutputStream = "PROMEMORIA_OUTPUT"
	Bucket       = "promemoria_delivered"
	Consumer     = "promemoria-delivery"
)

// Options configure a Stage. Zero values take the documented defaults.
type Options struct {
	// Subjects names the output subjects.
	Subjects events.Subjects
	// SMTP is the e-mail receiver; nil: none.
	SMTP *SMTPOptions
	// Webhook is the webhook receiver; nil: none.
	Webhook *WebhookOptions
	// DigestWait is how long an e-mail waits for more reminders and
	// advices to the same recipient (0: each is sent alone).
	DigestWait time.Duration
	// MaxAttempts bounds the tries of a delivery that fails temporarily
	// (default 10).
	MaxAttempts int
	// Backoff is the wait before the second try; it doubles up to
	// BackoffMax (defaults 10s and 10m).
	Backoff, BackoffMax time.Duration
	// Timeout bounds one try: an SMTP session, a webhook call (default 30s).
	Timeout time.Duration
	// AckWait is how long the broker waits for an ack before it delivers a
	// message again; the stage keeps the messages it holds alive (default
	// 30s).
	AckWait time.Duration
	// DrainTimeout bounds how long Run waits, once stopped, for the
	// deliveries in flight (default 30s).
	DrainTimeout time.Duration
	// RecordTTL is how long a delivery is remembered (default 30 days, as
	// long as the output stream keeps its messages).
	RecordTTL time.Duration
	// Replicas is the replication factor of the bucket (default 1).
	Replicas int
	// Texts writes the e-mails (default: the embedded templates).
	Texts *message.Texts
	// Now is the clock of grouping and of the times reported (default
	// time.Now).
	Now func() time.Time
	// Logger receives structured logs.
	Logger zerolog.Logger
	// Registerer receives the metrics (default: a registry of the stage's
	// own, Metrics().Registry).
	Registerer prometheus.Registerer
	// UserAgent names promemoria in webhook calls.
	UserAgent string
}

// SMTPOptions configure the e-mail receiver.
type SMTPOptions struct {
	// URL is smtp://user:pass@host:port (STARTTLS when the server offers
	// it; port 587 by default) or smtps://… (implicit TLS; port 465).
	URL string
	// From is the sender; ReplyTo, if set, the Reply-To.
	From, ReplyTo string
	// TLSInsecure accepts any certificate: for tests only.
	TLSInsecure bool
}

// WebhookOptions configure the webhook receiver.
type WebhookOptions struct {
	URL string
	// Secret keys the HMAC-SHA256 signature of each body.
	Secret string
}

// smtpTarget is an SMTPOptions.URL taken apart.
type smtpTarget struct {
	host        string
	port        int
	implicitTLS bool
	user, pass  string
	from        *mail.Address
	replyTo     string
	domain      string // of the sender, for Message-IDs
	insecure    bool
}

func parseSMTP(o *SMTPOptions) (*smtpTarget, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, errors.New("smtp url: not a URL")
	}
	t := &smtpTarget{host: u.Hostname(), insecure: o.TLSInsecure, replyTo: o.ReplyTo}
	switch u.Scheme {
	case "smtp":
		t.port = 587
	case "smtps":
		t.port, t.implicitTLS = 465, true
	default:
		return nil, fmt.Errorf("smtp url: scheme %q: want smtp or smtps", u.Scheme)
	}
	if t.host == "" {
		return nil, errors.New("smtp url: no host")
	}
	if p := u.Port(); p != "" {
		if t.port, err = strconv.Atoi(p); err != nil || t.port < 1 || t.port > 65535 {
			return nil, fmt.Errorf("smtp url: bad port %q", p)
		}
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	if t.from, err = mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("smtp from %q: %w", o.From, err)
	}
	_, t.domain, _ = strings.Cut(t.from.Address, "@")
	if t.domain == "" {
		t.domain = "promemoria.invalid"
	}
	return t, nil
}

func (o *Options) setDefaults() error {
	if o.Subjects.Prefix == "" {
		o.Subjects = events.Subjects{Prefix: events.DefaultPrefix}
	}
	if o.SMTP == nil && o.Webhook == nil {
		return errors.New("no receiver: configure smtp_url or webhook_url")
	}
	if o.Webhook != nil && o.Webhook.Secret == "" {
		return errors.New("webhook without a secret")
	}
	if o.DigestWait < 0 {
		return errors.New("digest wait must not be negative")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Second
	}
	if o.BackoffMax < o.Backoff {
		o.BackoffMax = max(o.Backoff, 10*time.Minute)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.RecordTTL <= 0 {
		o.RecordTTL = 30 * 24 * time.Hour
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Texts == nil {
		texts, err := message.Load("", nil)
		if err != nil {
			return fmt.Errorf("embedded texts: %w", err)
		}
		o.Texts = texts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.UserAgent == "" {
		o.UserAgent = "promemoria"
	}
	return nil
}

// backoff returns the wait after the attempt-th failed try.
func (o *Options) backoff(attempt int) time.Duration {
	d := o.Backoff
	for i := 1; i < attempt && d < o.BackoffMax; i++ {
		d *= 2
	}
	return min(d, o.BackoffMax)
}
