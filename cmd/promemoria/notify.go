package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
)

const notifyUsage = `Usage: promemoria notify [flags]

Runs the delivery stage alone: it takes the reminders and advices from the output
stream of a running promemoria (its own durable consumer, promemoria-delivery) and
delivers them by e-mail or PEC (smtp_url, smtp_from) and by webhook (webhook_url,
webhook_secret), grouping the e-mails to one recipient within digest_wait. The same
stage runs inside "promemoria serve" when a receiver is configured: run notify to
scale or restart delivery apart from the worker, and then leave the receivers out
of serve's settings.

It connects to nats_url (empty: the embedded server of a serve on this host, at
listen) and waits for the output stream if serve has not created it yet. HTTP on
http_listen: /healthz, /readyz (503 until the delivery consumer is bound),
/metrics. The settings are those of serve (flags, PROMEMORIA_* variables, --config):
"promemoria serve --help" lists them; the delivery ones are smtp_url, smtp_from,
smtp_reply_to, smtp_tls_insecure, webhook_url, webhook_secret, digest_wait,
delivery_max_attempts, delivery_backoff, delivery_backoff_max and delivery_timeout.

Examples:
  promemoria notify --nats-url nats://nats:4222 --smtp-url smtps://gare:secret@smtps.pec.example.it:465 \
    --smtp-from gare@pec.comune.example.it --http-listen 127.0.0.1:8081
  PROMEMORIA_WEBHOOK_URL=https://piattaforma.example.it/hooks/promemoria \
    PROMEMORIA_WEBHOOK_SECRET=... promemoria notify --nats-url nats://nats:4222

Exit status: 0 stopped by a signal, 1 failure, 2 bad usage.
`

func runNotify(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--help" || a == "-help" || a == "-h" || a == "help" {
			fmt.Fprint(stdout, notifyUsage)
			return 0
		}
	}
	cfg, err := config.Load("notify", args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return usageError(stderr, "notify", err)
	}
	if cfg.PrintConfig {
		cfg.Print(stdout)
		return 0
	}
	if !cfg.DeliveryEnabled() {
		return usageError(stderr, "notify", errors.New("no receiver: set smtp_url (with smtp_from) or webhook_url (with webhook_secret)"))
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunNotify(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("promemoria notify stopped")
		return 1
	}
	return 0
}
