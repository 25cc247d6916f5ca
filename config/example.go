package config

//go:generate go run ./genexample ../promemoria.example.yaml

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/promemoria/promemoria/contribution"
)

// exampleHeadings open the groups of the example file, before the setting
// they name.
var exampleHeadings = map[string]string{
	"nats_url":               "NATS: leave nats_url empty to run the embedded server.",
	"subject_prefix":         "Subjects: every input and output subject starts with this prefix.",
	"settle":                 "Reminder timing.",
	"default_cig_service":    "ANAC services.",
	"probes":                 "Outage probes: HTTP checks of ANAC's services that publish portal.down and portal.up by themselves\n(off while the list is empty; see README, \"Detecting outages\"). Each is {service, url, method (GET or HEAD),\nexpect_status (default 200-399), expect_body, interval, timeout}; on the command line --probe service=URL.",
	"contribution_schedules": "ANAC contribution owed by a bidder, by the lot's base amount (in euro cents). The schedule is the one\nin force on the tender's publication date (Europe/Rome): each applies from its \"from\" date until the next\none's; list them by increasing \"from\". A tender published before the first schedule gets a reminder\nwithout an amount. These are the documented defaults; the figures come from secondary sources: check them\nagainst ANAC's deliberations (anac-2021: 1197/2019, 830/2021; anac-2023: 621/2022, 610/2023) before relying on them.",
	"concurrency":            "The leading worker (one replica leads at a time, under a lease).",
	"http_listen":            "HTTP: the web console, /v1, /healthz, /readyz and /metrics (see README, \"The console\").",
	"log_level":              "Logs.",
	"nats_user":              "Credentials and TLS for an external NATS (the embedded server takes them from embedded_config).",
	"drain_timeout":          "Shutdown.",
	"timezone":               "Calendar: when reminders go out and which days the office is closed.",
	"templates_dir":          "Message texts.",
	"smtp_url":               "Delivery (see README, \"Delivering reminders\"): reminders and advices by e-mail or PEC and by webhook,\ninside serve (when a receiver is set) or alone with promemoria notify.",
}

// exampleLists are the settings written as YAML lists of names.
var exampleLists = map[string]bool{"services": true, "bidder_services": true, "closure_days": true}

// Example returns promemoria.example.yaml: every setting of Settings, in
// the order --help lists them, with its help and its variable as comments
// and its default as the value. go generate ./config writes it at the
// repository's root, and a test fails while the file differs.
func Example() []byte {
	var b bytes.Buffer
	b.WriteString("# promemoria configuration file: the same keys as the flags, with _ for -.\n")
	b.WriteString("# Precedence: flag > environment (PROMEMORIA_<KEY>) > this file > default.\n")
	b.WriteString("# Use it with: promemoria serve --config promemoria.example.yaml --print-config\n")
	b.WriteString("# Every setting is here with its default. Generated from the settings table (config/config.go)\n")
	b.WriteString("# by \"go generate ./config\": edit the table, not this file.\n")
	for _, s := range Settings() {
		if h, ok := exampleHeadings[s.Name]; ok {
			b.WriteString("\n")
			for _, line := range strings.Split(h, "\n") {
				b.WriteString("# " + line + "\n")
			}
		}
		b.WriteString("\n")
		for _, line := range wrapComment(s.Help+" (env "+s.Env()+", flag --"+s.Flag()+")", 100) {
			b.WriteString("# " + line + "\n")
		}
		switch {
		case s.Name == "contribution_schedules":
			b.WriteString(exampleSchedules(contribution.DefaultSchedules()))
		case s.Name == "probes":
			b.WriteString("probes: []\n")
		case exampleLists[s.Name]:
			var items []string
			if s.Def != "" {
				items = strings.Split(s.Def, ",")
			}
			fmt.Fprintf(&b, "%s: [%s]\n", s.Name, strings.Join(items, ", "))
		default:
			fmt.Fprintf(&b, "%s: %s\n", s.Name, exampleScalar(s.Def))
		}
	}
	return b.Bytes()
}

// exampleScalar writes a default as YAML: numbers, booleans and durations
// plain, other strings quoted when YAML needs it.
func exampleScalar(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return v
	}
	if v == "true" || v == "false" {
		return v
	}
	if _, err := time.ParseDuration(v); err == nil {
		return v
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return strconv.Quote(v)
	}
	return strings.TrimSpace(string(out))
}

// exampleSchedules writes the contribution schedules as a YAML list, one
// bracket a line.
func exampleSchedules(ss []contribution.Schedule) string {
	var b strings.Builder
	b.WriteString("contribution_schedules:\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "  - id: %s\n    from: %q\n    brackets:\n", s.ID, s.From)
		for _, br := range s.Brackets {
			fmt.Fprintf(&b, "      - {from_cents: %d, amount_cents: %d}\n", br.FromCents, br.AmountCents)
		}
	}
	return b.String()
}

// wrapComment breaks text into lines of at most width bytes.
func wrapComment(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
