// Command promemoria remembers the gaps an ANAC outage leaves in Italian
// e-procurement (tenders without a CIG, bids admitted with reserve) and
// reminds the right people once the service they depend on is back.
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
	"time"

	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `promemoria remembers the gaps ANAC outages leave (tenders without a CIG,
bids admitted with reserve) and reminds the right people once ANAC is back.

Usage:
  promemoria [serve] [flags]          run the service (default; embedded NATS unless --nats-url)
  promemoria publish TYPE [FILE|-]    validate and publish an input event
  promemoria pending [flags]          list the open gaps of a running promemoria
  promemoria services [flags]         list the ANAC services and their state
  promemoria demo [--speed N] [--keep] replay the May 2021 ANAC outage in under a minute
                                      (--keep: then leave it running with the web console)
  promemoria probe --once [flags]     check the configured outage probes once
  promemoria notify [flags]           deliver reminders by e-mail/PEC and webhook, apart from serve
  promemoria --version                print the version (module version or VCS revision)

Run "promemoria COMMAND --help" for a command's flags.
Exit status: 0 ok, 1 failure, 2 bad usage.
`

// run is main without the process: it returns the exit code (0 ok,
// 1 failure, 2 usage).
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "--version", "-version", "version":
			fmt.Fprintln(stdout, app.VersionLine())
			return 0
		case "--help", "-help", "-h", "help":
			fmt.Fprint(stdout, usage)
			return 0
		case "serve":
			args = args[1:]
		case "publish":
			return runPublish(args[1:], getenv, stdout, stderr)
		case "pending":
			return runPending(args[1:], getenv, stdout, stderr)
		case "services":
			return runServices(args[1:], getenv, stdout, stderr)
		case "demo":
			return runDemo(args[1:], getenv, stdout, stderr)
		case "probe":
			return runProbe(args[1:], getenv, stdout, stderr)
		case "notify":
			return runNotify(args[1:], getenv, stdout, stderr)
		default:
			if len(args[0]) > 0 && args[0][0] != '-' {
				fmt.Fprintf(stderr, "promemoria: unknown command %q\n\n%s", args[0], usage)
				return 2
			}
		}
	}
	cfg, err := config.Load(cmd, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "promemoria: %v\n", err)
		return 2
	}
	if cfg.PrintConfig {
		cfg.Print(stdout)
		return 0
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("promemoria stopped")
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
