package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/probe"
)

const probeUsage = `Usage: promemoria probe --once [flags]

Checks every configured outage probe once, at the same time, and prints what each
saw: the service, the URL, the HTTP status, how long the check took and the
verdict. It publishes nothing and needs no NATS: it is for setting probes up. The
probes themselves run inside "promemoria serve", which publishes portal.down and
portal.up when a service fails or recovers.

The probes come from the same settings as serve: --probe service=URL
(repeatable), PROMEMORIA_PROBES, or the probes list of a --config file;
probe_timeout and probe_interval give their defaults.

Examples:
  promemoria probe --once --probe pcp=https://pcp.example.org/status
  promemoria probe --once --config promemoria.yaml

Exit status: 0 every probe passed, 1 one failed, 2 bad usage (or no probes).
`

func runProbe(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	once := false
	rest := make([]string, 0, len(args))
	for _, a := range args {
		switch a {
		case "--once", "-once", "--once=true", "-once=true":
			once = true
		case "--once=false", "-once=false":
			once = false
		case "--help", "-help", "-h", "help":
			fmt.Fprint(stdout, probeUsage)
			return 0
		default:
			rest = append(rest, a)
		}
	}
	if !once {
		return usageError(stderr, "probe", errors.New("the probes run inside serve; --once checks them once from here"))
	}
	cfg, err := config.Load("probe", rest, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return usageError(stderr, "probe", err)
	}
	if len(cfg.Probes) == 0 {
		return usageError(stderr, "probe", errors.New("no probes configured: give --probe service=URL, PROMEMORIA_PROBES or probes in --config"))
	}
	longest := time.Duration(0)
	for _, p := range cfg.Probes {
		longest = max(longest, p.Timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), longest+5*time.Second)
	defer cancel()
	results := probe.Once(ctx, probe.NewChecker(probe.UserAgent(app.Version)), cfg.Probes, time.Now())
	writeProbeTable(stdout, results)
	if slices.ContainsFunc(results, func(r probe.Result) bool { return !r.OK }) {
		return 1
	}
	return 0
}

// writeProbeTable prints the results of the checks as an aligned table.
func writeProbeTable(w io.Writer, results []probe.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tURL\tSTATUS\tLATENCY\tVERDICT")
	for _, r := range results {
		status := "-"
		if r.Status != 0 {
			status = fmt.Sprint(r.Status)
		}
		verdict := "up"
		if !r.OK {
			verdict = "DOWN: " + r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Service, probe.RedactURL(r.URL), status, r.Latency.Round(time.Millisecond), verdict)
	}
	_ = tw.Flush()
}
