package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
)

// maxDigest is the most reminders and advices one e-mail carries; a
// larger group is sent at once, and what comes after starts a new one.
const maxDigest = 50

// outcome is the result of one try.
type outcome struct {
	err error
	// permanent is true when trying again cannot help.
	permanent bool
	// status is the webhook's HTTP status, if it answered.
	status int
}

// composed is an e-mail ready for its tries.
type composed struct {
	msg       *gomail.Msg
	messageID string
	to        string
	cc        []string
}

// compose writes the e-mail carrying items (sorted by tender, lot, type
// and id) to their common recipient, the people in copy in Cc.
func (s *Stage) compose(items []*item) (*composed, error) {
	slices.SortFunc(items, func(a, b *item) int {
		return strings.Compare(a.tender+"\x00"+a.entry.LotID+"\x00"+string(a.typ)+"\x00"+a.id,
			b.tender+"\x00"+b.entry.LotID+"\x00"+string(b.typ)+"\x00"+b.id)
	})
	first := items[0]
	d := message.Digest{Recipient: first.to, Operator: first.operator}
	for _, it := range items {
		d.Items = append(d.Items, it.entry)
	}
	mail, err := s.opts.Texts.Mail(d)
	if err != nil && !errors.Is(err, message.ErrFallback) {
		return nil, err
	}
	if err != nil {
		s.log.Warn().Err(err).Str("receiver", string(events.ReceiverEmail)).Msg("digest template override failed: the embedded one wrote the e-mail")
	}
	t := s.smtp
	c := &composed{msg: gomail.NewMsg(gomail.WithNoDefaultUserAgent()), to: first.to.Email}
	c.messageID = messageID(first.to.Email, t.domain, sortedIDs(items))
	m := c.msg
	m.FromMailAddress(t.from)
	if err := m.AddToFormat(first.to.Name, first.to.Email); err != nil {
		return nil, fmt.Errorf("to %s: %w", first.to.Email, err)
	}
	seen := map[string]bool{strings.ToLower(first.to.Email): true}
	for _, p := range first.cc {
		if seen[strings.ToLower(p.Email)] {
			continue
		}
		seen[strings.ToLower(p.Email)] = true
		if err := m.AddCcFormat(p.Name, p.Email); err != nil {
			return nil, fmt.Errorf("cc %s: %w", p.Email, err)
		}
		c.cc = append(c.cc, p.Email)
	}
	if t.replyTo != "" {
		if err := m.ReplyTo(t.replyTo); err != nil {
			return nil, fmt.Errorf("reply-to: %w", err)
		}
	}
	m.Subject(mail.Subject)
	m.SetMessageIDWithValue(c.messageID)
	m.SetDateWithValue(s.opts.Now())
	m.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(gomail.Header("X-Promemoria-Ids"), strings.Join(sortedIDs(items), " "))
	m.SetBodyString(gomail.TypeTextPlain, mail.Text)
	if mail.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, mail.HTML)
	}
	return c, nil
}

// sendMail makes one try at handing the e-mail to the SMTP server.
func (s *Stage) sendMail(ctx context.Context, c *composed) outcome {
	t := s.smtp
	opts := []gomail.Option{
		gomail.WithPort(t.port),
		gomail.WithTimeout(s.opts.Timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: t.host, InsecureSkipVerify: t.insecure, MinVersion: tls.VersionTLS12}), //nolint:gosec // smtp_tls_insecure is for tests
	}
	if t.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if t.user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(t.user), gomail.WithPassword(t.pass))
	}
	client, err := gomail.NewClient(t.host, opts...)
	if err != nil {
		return outcome{err: fmt.Errorf("smtp client: %w", err), permanent: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	err = client.DialAndSendWithContext(ctx, c.msg)
	if c.msg.IsDelivered() {
		// Accepted: an error closing the session changes nothing.
		return outcome{}
	}
	if err == nil {
		err = errors.New("the server did not accept the message")
	}
	return outcome{err: err, permanent: smtpPermanent(err)}
}

// smtpPermanent reports whether the server refused the message for good:
// a 5xx reply to MAIL FROM, RCPT TO or DATA. Anything else (no
// connection, a timeout, a 4xx, a failed login) may pass.
func smtpPermanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
	default:
		return false
	}
	// ErrorCode is 0 when the error is not the server's reply (a dropped
	// connection): that may pass.
	code := se.ErrorCode()
	return code >= 500 && code < 600
}
