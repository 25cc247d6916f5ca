package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/contribution"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func load(t *testing.T, args []string, vars map[string]string) (*Config, error) {
	t.Helper()
	return Load("serve", args, env(vars), io.Discard)
}

func mustLoad(t *testing.T, args []string, vars map[string]string) *Config {
	t.Helper()
	c, err := load(t, args, vars)
	if err != nil {
		t.Fatalf("Load(%q, %v) = %v", args, vars, err)
	}
	return c
}

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustHours(t *testing.T, s string) calendar.Hours {
	t.Helper()
	h, err := calendar.ParseHours(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDefaults(t *testing.T) {
	want := &Config{
		Listen:              "127.0.0.1:4222",
		DataDir:             "./promemoria-data",
		JetStreamMaxMemory:  256 << 20,
		JetStreamMaxStore:   10 << 30,
		SubjectPrefix:       "procurement",
		Settle:              5 * time.Minute,
		RepeatInterval:      24 * time.Hour,
		EscalateBefore:      48 * time.Hour,
		SweepGrace:          30 * time.Second,
		DefaultCIGService:   "pcp",
		ContributionService: "payments",
		Services:            []string{"smartcig", "simog", "pcp", "payments", "fvoe", "bdncp", "ausa"},
		Concurrency:         4,
		BatchSize:           500,
		TimerResolution:     time.Minute,
		LeaseTTL:            10 * time.Second,
		MaxAttempts:         10,
		DedupWindow:         24 * time.Hour,
		Replicas:            1,
		MaxEventBytes:       64 << 10,
		HTTPListen:          "127.0.0.1:8080",
		LogLevel:            "info",
		LogFormat:           "json",
		DrainTimeout:        30 * time.Second,

		ContributionSchedules: contribution.DefaultSchedules(),
		OfficeHours:           "Mon-Fri 09:00-18:00",
		Hours:                 mustHours(t, "Mon-Fri 09:00-18:00"),
		Timezone:              "Europe/Rome",
		Location:              mustLocation(t, "Europe/Rome"),
		BidderServices:        []string{"payments", "fvoe"},
		AdviceMinOverlap:      0,
		ProbeInterval:         30 * time.Second,
		ProbeTimeout:          5 * time.Second,
		ProbeFailures:         3,
		ProbeSuccesses:        2,
		DigestWait:            2 * time.Minute,
		DeliveryMaxAttempts:   10,
		DeliveryBackoff:       10 * time.Second,
		DeliveryBackoffMax:    10 * time.Minute,
		DeliveryTimeout:       30 * time.Second,
	}
	tests := []struct {
		name string
		args []string
		vars map[string]string
	}{
		{"nothing given", nil, nil},
		{"empty file", []string{"--config", "testdata/empty.yaml"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustLoad(t, tt.args, tt.vars)
			got.File = ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestSettingNames(t *testing.T) {
	byName := map[string]Setting{}
	for _, s := range Settings() {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("setting %q listed twice", s.Name)
		}
		byName[s.Name] = s
	}
	for _, name := range []string{"nats_url", "listen", "data_dir", "subject_prefix", "settle", "repeat_interval", "escalate_before", "default_cig_service",
		"contribution_schedules", "office_hours", "timezone", "closure_days", "templates_dir", "bidder_services"} {
		t.Run(name, func(t *testing.T) {
			s, ok := byName[name]
			if !ok {
				t.Fatalf("no setting %q", name)
			}
			if want := strings.ReplaceAll(name, "_", "-"); s.Flag() != want {
				t.Errorf("Flag = %q, want %q", s.Flag(), want)
			}
			if want := "PROMEMORIA_" + strings.ToUpper(name); s.Env() != want {
				t.Errorf("Env = %q, want %q", s.Env(), want)
			}
		})
	}
}

func TestFile(t *testing.T) {
	c := mustLoad(t, []string{"--config", "testdata/full.yaml"}, nil)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"file", c.File, "testdata/full.yaml"},
		{"repeat_interval", c.RepeatInterval, 12 * time.Hour},
		{"settle", c.Settle, 2 * time.Minute},
		{"escalate_before", c.EscalateBefore, 72 * time.Hour},
		{"listen", c.Listen, "0.0.0.0:4333"},
		{"subject_prefix", c.SubjectPrefix, "anac.test"},
		{"default_cig_service", c.DefaultCIGService, "smartcig"},
		{"services list, duplicates dropped", c.Services, []string{"pcp", "payments"}},
		{"concurrency", c.Concurrency, 8},
		{"sync_always", c.SyncAlways, true},
		{"log_level", c.LogLevel, "debug"},
		{"bidder_services", c.BidderServices, []string{"payments"}},
		{"contribution_schedules ids", scheduleIDs(c.ContributionSchedules), []string{"anac-2021", "anac-2023", "local-2026"}},
		{"contribution_schedules, unquoted date", c.ContributionSchedules[1].From, "2023-04-01"},
		{"contribution_schedules brackets", c.ContributionSchedules[2].Brackets, []contribution.Bracket{{FromCents: 0, AmountCents: 0}, {FromCents: 4_000_000, AmountCents: 1000}}},
		{"office_hours", c.OfficeHours, "Mon-Fri 08:30-13:00,14:00-17:30"},
		{"hours", c.Hours, mustHours(t, "Mon-Fri 08:30-13:00,14:00-17:30")},
		{"timezone", c.Timezone, "Europe/Berlin"},
		{"location", c.Location.String(), "Europe/Berlin"},
		{"closure_days, unquoted", c.ClosureDays, []calendar.Closure{{Month: time.June, Day: 29}, {Year: 2026, Month: time.December, Day: 24}}},
		{"templates_dir", c.TemplatesDir, "testdata"},
		{"untouched default", c.DrainTimeout, 30 * time.Second},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("got %v, want %v", ch.got, ch.want)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	const file = "testdata/full.yaml"
	tests := []struct {
		name     string
		args     []string
		vars     map[string]string
		repeat   time.Duration
		listen   string
		services []string
		sync     bool
	}{
		{
			name:   "default",
			repeat: 24 * time.Hour, listen: "127.0.0.1:4222", services: []string{"smartcig", "simog", "pcp", "payments", "fvoe", "bdncp", "ausa"}, sync: false,
		},
		{
			name: "file over default", args: []string{"--config", file},
			repeat: 12 * time.Hour, listen: "0.0.0.0:4333", services: []string{"pcp", "payments"}, sync: true,
		},
		{
			name: "file named by PROMEMORIA_CONFIG", vars: map[string]string{"PROMEMORIA_CONFIG": file},
			repeat: 12 * time.Hour, listen: "0.0.0.0:4333", services: []string{"pcp", "payments"}, sync: true,
		},
		{
			name: "--config over PROMEMORIA_CONFIG", args: []string{"--config", file}, vars: map[string]string{"PROMEMORIA_CONFIG": "testdata/unknown_key.yaml"},
			repeat: 12 * time.Hour, listen: "0.0.0.0:4333", services: []string{"pcp", "payments"}, sync: true,
		},
		{
			name: "env over file", args: []string{"--config", file},
			vars:   map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "6h", "PROMEMORIA_LISTEN": "10.0.0.1:4222", "PROMEMORIA_SERVICES": "fvoe", "PROMEMORIA_SYNC_ALWAYS": "false"},
			repeat: 6 * time.Hour, listen: "10.0.0.1:4222", services: []string{"fvoe"}, sync: false,
		},
		{
			name:   "env over default",
			vars:   map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "6h", "PROMEMORIA_SYNC_ALWAYS": "true"},
			repeat: 6 * time.Hour, listen: "127.0.0.1:4222", services: []string{"smartcig", "simog", "pcp", "payments", "fvoe", "bdncp", "ausa"}, sync: true,
		},
		{
			name:   "flag over env over file",
			args:   []string{"--config", file, "--repeat-interval", "1h", "--listen=[::1]:4223", "--services", "smartcig, payments", "--sync-always=false"},
			vars:   map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "6h", "PROMEMORIA_LISTEN": "10.0.0.1:4222", "PROMEMORIA_SERVICES": "fvoe", "PROMEMORIA_SYNC_ALWAYS": "true"},
			repeat: time.Hour, listen: "[::1]:4223", services: []string{"smartcig", "payments"}, sync: false,
		},
		{
			name: "flag equal to the default still wins",
			args: []string{"--config", file, "--repeat-interval", "24h"}, vars: map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "6h"},
			repeat: 24 * time.Hour, listen: "0.0.0.0:4333", services: []string{"pcp", "payments"}, sync: true,
		},
		{
			name: "a bad value hidden by a higher level is not read",
			args: []string{"--config", "testdata/bad_duration.yaml"}, vars: map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "2h"},
			repeat: 2 * time.Hour, listen: "127.0.0.1:4222", services: []string{"smartcig", "simog", "pcp", "payments", "fvoe", "bdncp", "ausa"}, sync: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.args, tt.vars)
			if c.RepeatInterval != tt.repeat {
				t.Errorf("RepeatInterval = %v, want %v", c.RepeatInterval, tt.repeat)
			}
			if c.Listen != tt.listen {
				t.Errorf("Listen = %q, want %q", c.Listen, tt.listen)
			}
			if !reflect.DeepEqual(c.Services, tt.services) {
				t.Errorf("Services = %q, want %q", c.Services, tt.services)
			}
			if c.SyncAlways != tt.sync {
				t.Errorf("SyncAlways = %v, want %v", c.SyncAlways, tt.sync)
			}
		})
	}
}

func TestNATSURL(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"none: embedded", nil, nil, ""},
		{"NATS_URL fallback", nil, map[string]string{"NATS_URL": "nats://env:4222"}, "nats://env:4222"},
		{"PROMEMORIA_NATS_URL over NATS_URL", nil, map[string]string{"NATS_URL": "nats://env:4222", "PROMEMORIA_NATS_URL": "nats://mine:4222"}, "nats://mine:4222"},
		{"NATS_URL over file", []string{"--config", "testdata/nats_url.yaml"}, map[string]string{"NATS_URL": "nats://env:4222"}, "nats://env:4222"},
		{"file without env", []string{"--config", "testdata/nats_url.yaml"}, nil, "nats://file.example:4222"},
		{"flag over NATS_URL", []string{"--nats-url", "nats://flag:4222"}, map[string]string{"NATS_URL": "nats://env:4222"}, "nats://flag:4222"},
		{"several URLs", []string{"--nats-url", "nats://a:4222, nats://b:4222"}, nil, "nats://a:4222, nats://b:4222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLoad(t, tt.args, tt.vars).NATSURL; got != tt.want {
				t.Errorf("NATSURL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		vars    map[string]string
		setting string
		origin  string
		msg     []string
		is      error
	}{
		{
			name: "bad duration from flag", args: []string{"--repeat-interval", "soon"},
			setting: "repeat_interval", origin: "flag --repeat-interval", msg: []string{`"soon" is not a duration`, "24h"},
		},
		{
			name: "bad duration from env", vars: map[string]string{"PROMEMORIA_SETTLE": "5 minutes"},
			setting: "settle", origin: "env PROMEMORIA_SETTLE", msg: []string{`"5 minutes" is not a duration`, "5m"},
		},
		{
			name: "bad duration from file", args: []string{"--config", "testdata/bad_duration.yaml"},
			setting: "repeat_interval", origin: "file testdata/bad_duration.yaml key repeat_interval", msg: []string{`"soon" is not a duration`},
		},
		{
			name: "repeat_interval below 1s", vars: map[string]string{"PROMEMORIA_REPEAT_INTERVAL": "500ms"},
			setting: "repeat_interval", origin: "env PROMEMORIA_REPEAT_INTERVAL", msg: []string{"500ms is too short", "minimum is 1s"},
		},
		{
			name: "negative settle", args: []string{"--settle=-5m"},
			setting: "settle", origin: "flag --settle", msg: []string{"too short", "minimum is 0s"},
		},
		{
			name: "listen without port", args: []string{"--listen", "localhost"},
			setting: "listen", origin: "flag --listen", msg: []string{`"localhost" is not host:port`, "127.0.0.1:4222"},
		},
		{
			name: "listen with bad port", args: []string{"--listen", "127.0.0.1:70000"},
			setting: "listen", origin: "flag --listen", msg: []string{`"127.0.0.1:70000" has a bad port`},
		},
		{
			name: "http_listen bad from env", vars: map[string]string{"PROMEMORIA_HTTP_LISTEN": "8080"},
			setting: "http_listen", origin: "env PROMEMORIA_HTTP_LISTEN", msg: []string{"not host:port"},
		},
		{
			name: "bad service name", args: []string{"--default-cig-service", "Smart CIG"},
			setting: "default_cig_service", origin: "flag --default-cig-service", msg: []string{`"Smart CIG" is not a service name`, "smartcig"},
		},
		{
			name: "bad name in services", vars: map[string]string{"PROMEMORIA_SERVICES": "pcp,PCP"},
			setting: "services", origin: "env PROMEMORIA_SERVICES", msg: []string{`"PCP" is not a service name`},
		},
		{
			name: "bad NATS URL from NATS_URL", vars: map[string]string{"NATS_URL": "localhost"},
			setting: "nats_url", origin: "env NATS_URL", msg: []string{`"localhost" is not a NATS URL`, "nats://host:4222"},
		},
		{
			name: "bad subject prefix", args: []string{"--subject-prefix", "procurement."},
			setting: "subject_prefix", origin: "flag --subject-prefix", msg: []string{"not a subject prefix"},
		},
		{
			name: "integer out of range", args: []string{"--concurrency", "0"},
			setting: "concurrency", origin: "flag --concurrency", msg: []string{"out of range", "1 to 64"},
		},
		{
			name: "not an integer", vars: map[string]string{"PROMEMORIA_REPLICAS": "three"},
			setting: "replicas", origin: "env PROMEMORIA_REPLICAS", msg: []string{`"three" is not a whole number`},
		},
		{
			name: "not a boolean", args: []string{"--sync-always=maybe"},
			setting: "sync_always", origin: "flag --sync-always", msg: []string{`"maybe" is not true or false`},
		},
		{
			name: "empty data_dir", args: []string{"--data-dir", " "},
			setting: "data_dir", origin: "flag --data-dir", msg: []string{"must not be empty"},
		},
		{
			name: "bad log level", args: []string{"--log-level", "verbose"},
			setting: "log_level", origin: "flag --log-level", msg: []string{"want debug, info, warn or error"},
		},
		{
			name: "unknown key in file", args: []string{"--config", "testdata/unknown_key.yaml"},
			setting: "repeat_intervall", origin: "file testdata/unknown_key.yaml", msg: []string{"unknown key", "repeat_interval"},
		},
		{
			name: "bad YAML", args: []string{"--config", "testdata/bad_yaml.yaml"},
			setting: "config", origin: "testdata/bad_yaml.yaml", msg: []string{"not valid YAML"},
		},
		{
			name: "missing file", args: []string{"--config", "testdata/missing.yaml"},
			setting: "config", origin: "testdata/missing.yaml", msg: []string{"testdata/missing.yaml"}, is: fs.ErrNotExist,
		},
		{
			name: "missing file from PROMEMORIA_CONFIG", vars: map[string]string{"PROMEMORIA_CONFIG": "testdata/missing.yaml"},
			setting: "config", origin: "testdata/missing.yaml", is: fs.ErrNotExist,
		},
		{
			name: "cert without key", args: []string{"--nats-url", "tls://nats.example:4222", "--nats-cert", "testdata/full.yaml"},
			setting: "nats_cert", origin: "nats_cert and nats_key", msg: []string{"give both the client certificate and its key"},
		},
		{
			name: "key without cert", vars: map[string]string{"PROMEMORIA_NATS_URL": "tls://nats.example:4222", "PROMEMORIA_NATS_KEY": "testdata/full.yaml"},
			setting: "nats_cert", origin: "nats_cert and nats_key", msg: []string{"give both"},
		},
		{
			name: "cert file missing", args: []string{"--nats-url", "tls://nats.example:4222", "--nats-cert", "testdata/nope.pem", "--nats-key", "testdata/full.yaml"},
			setting: "nats_cert", origin: "testdata/nope.pem", msg: []string{"cannot read the file"}, is: fs.ErrNotExist,
		},
		{
			name: "user without nats_url", args: []string{"--nats-user", "alice"},
			setting: "nats_url", origin: "credentials given", msg: []string{"set nats_url", "embedded_config"},
		},
		{
			name: "token without nats_url", vars: map[string]string{"PROMEMORIA_NATS_TOKEN": "s3cret"},
			setting: "nats_url", origin: "credentials given", msg: []string{"external server"},
		},
		{
			name: "creds file without nats_url", args: []string{"--nats-creds", "testdata/full.yaml"},
			setting: "nats_url", origin: "credentials given",
		},
		{
			name: "creds and nkey", args: []string{"--nats-url", "nats://h:4222", "--nats-creds", "testdata/full.yaml", "--nats-nkey", "testdata/full.yaml"},
			setting: "nats_creds", origin: "nats_creds and nats_nkey", msg: []string{"not both"},
		},
		{
			name: "unsorted schedules from file", args: []string{"--config", "testdata/schedules_unsorted.yaml"},
			setting: "contribution_schedules", origin: "file testdata/schedules_unsorted.yaml key contribution_schedules",
			msg: []string{`not sorted: schedule 2 "anac-2021" (from 2021-01-01) comes after schedule 1 "anac-2023" (from 2023-04-01)`, "by increasing from date"},
			is:  contribution.ErrInvalidTable,
		},
		{
			name: "overlapping schedules from file", args: []string{"--config", "testdata/schedules_overlap.yaml"},
			setting: "contribution_schedules", origin: "file testdata/schedules_overlap.yaml key contribution_schedules",
			msg: []string{`schedule 2 "anac-2023-bis" and schedule 1 "anac-2023" overlap`}, is: contribution.ErrInvalidTable,
		},
		{
			name: "old valid_from key in file", args: []string{"--config", "testdata/schedules_old_key.yaml"},
			setting: "contribution_schedules", origin: "file testdata/schedules_old_key.yaml key contribution_schedules",
			msg: []string{`unknown field "valid_from"`, `"from":"2023-04-01"`},
		},
		{
			name:    "unsorted schedules from env",
			vars:    map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": `[{"id":"b","from":"2023-04-01","brackets":[{"from_cents":0,"amount_cents":0}]},{"id":"a","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":0}]}]`},
			setting: "contribution_schedules", origin: "env PROMEMORIA_CONTRIBUTION_SCHEDULES", msg: []string{"not sorted"}, is: contribution.ErrInvalidTable,
		},
		{
			name: "schedules not JSON", args: []string{"--contribution-schedules", "anac-2023:2023-04-01"},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{"not a list of schedules", `[{"id":"anac-2023"`},
		},
		{
			name: "schedules with text after the array", args: []string{"--contribution-schedules", `[{"id":"a","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":0}]}] []`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{"unexpected text after the JSON array"},
		},
		{
			name: "empty schedules", vars: map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": " "},
			setting: "contribution_schedules", origin: "env PROMEMORIA_CONTRIBUTION_SCHEDULES", msg: []string{"must not be empty", "JSON array"},
		},
		{
			name: "no schedules", args: []string{"--contribution-schedules", "[]"},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{"no schedules"}, is: contribution.ErrInvalidTable,
		},
		{
			name: "schedule with a bad date", args: []string{"--contribution-schedules", `[{"id":"a","from":"01/04/2023","brackets":[{"from_cents":0,"amount_cents":0}]}]`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{`schedule 1 "a": from "01/04/2023" is not a date`, "2023-04-01"},
		},
		{
			name: "schedule with a duplicate id", args: []string{"--contribution-schedules", `[{"id":"a","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":0}]},{"id":"a","from":"2023-04-01","brackets":[{"from_cents":0,"amount_cents":0}]}]`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{`schedule 2 "a" has the same id as schedule 1`},
		},
		{
			name: "empty YAML list of schedules", args: []string{"--config", "testdata/schedules_empty.yaml"},
			setting: "contribution_schedules", origin: "file testdata/schedules_empty.yaml key contribution_schedules", msg: []string{"no schedules"}, is: contribution.ErrInvalidTable,
		},
		{
			name: "bracket without amount_cents", args: []string{"--contribution-schedules", `[{"id":"a","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":0},{"from_cents":15000000}]}]`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{`schedule 1 "a" bracket 2 has no amount_cents`, "0 for exempt"},
		},
		{
			name: "bracket without from_cents", vars: map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": `[{"id":"a","from":"2021-01-01","brackets":[{"amount_cents":0}]}]`},
			setting: "contribution_schedules", origin: "env PROMEMORIA_CONTRIBUTION_SCHEDULES", msg: []string{`schedule 1 "a" bracket 1 has no from_cents`},
		},
		{
			name: "amount as euros text", args: []string{"--contribution-schedules", `[{"id":"a","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":"20 €"}]}]`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{"not a list of schedules", "amount_cents"},
		},
		{
			name: "schedule without brackets", args: []string{"--contribution-schedules", `[{"id":"a","from":"2021-01-01","brackets":[]}]`},
			setting: "contribution_schedules", origin: "flag --contribution-schedules", msg: []string{`schedule 1 "a": no brackets`},
		},
		{
			name: "bad office hours", args: []string{"--office-hours", "9-18"},
			setting: "office_hours", origin: "flag --office-hours", msg: []string{`"9-18"`, "Mon-Fri 09:00-18:00", "always"},
		},
		{
			name: "office hours ending before they start", vars: map[string]string{"PROMEMORIA_OFFICE_HOURS": "Mon-Fri 18:00-09:00"},
			setting: "office_hours", origin: "env PROMEMORIA_OFFICE_HOURS", msg: []string{"Mon-Fri 09:00-18:00"},
		},
		{
			name: "empty office hours", vars: map[string]string{"PROMEMORIA_OFFICE_HOURS": " "},
			setting: "office_hours", origin: "env PROMEMORIA_OFFICE_HOURS", msg: []string{"always"},
		},
		{
			name: "unknown time zone", args: []string{"--timezone", "Europe/Roma"},
			setting: "timezone", origin: "flag --timezone", msg: []string{`"Europe/Roma" is not a time zone`, "Europe/Rome"},
		},
		{
			name: "empty time zone", vars: map[string]string{"PROMEMORIA_TIMEZONE": " "},
			setting: "timezone", origin: "env PROMEMORIA_TIMEZONE", msg: []string{"must not be empty", "Europe/Rome"},
		},
		{
			name: "impossible closure day", args: []string{"--closure-days", "06-29,2026-02-30"},
			setting: "closure_days", origin: "flag --closure-days", msg: []string{`"2026-02-30"`, "06-29", "commas"},
		},
		{
			name: "closure day the Italian way", vars: map[string]string{"PROMEMORIA_CLOSURE_DAYS": "29/06"},
			setting: "closure_days", origin: "env PROMEMORIA_CLOSURE_DAYS", msg: []string{`"29/06"`, "2026-06-29"},
		},
		{
			name: "missing templates_dir", args: []string{"--templates-dir", "testdata/no-such-dir"},
			setting: "templates_dir", origin: "testdata/no-such-dir", msg: []string{"cannot read the directory"}, is: fs.ErrNotExist,
		},
		{
			name: "templates_dir is a file", vars: map[string]string{"PROMEMORIA_TEMPLATES_DIR": "testdata/full.yaml"},
			setting: "templates_dir", origin: "testdata/full.yaml", msg: []string{"not a directory", "leave it empty"},
		},
		{
			name: "bad name in bidder_services", args: []string{"--bidder-services", "payments,FVOE"},
			setting: "bidder_services", origin: "flag --bidder-services", msg: []string{`"FVOE" is not a service name`, "payments,fvoe"},
		},
		{
			name: "empty bidder_services", vars: map[string]string{"PROMEMORIA_BIDDER_SERVICES": ""}, args: []string{"--bidder-services="},
			setting: "bidder_services", origin: "flag --bidder-services", msg: []string{`"" is not a service name`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.vars)
			if err == nil {
				t.Fatalf("Load = %+v, want an error", c)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if ce.Setting != tt.setting || ce.Origin != tt.origin {
				t.Errorf("Setting %q Origin %q; want %q %q", ce.Setting, ce.Origin, tt.setting, tt.origin)
			}
			text := err.Error()
			if want := "config " + tt.setting + " (" + tt.origin + "): "; !strings.HasPrefix(text, want) {
				t.Errorf("error %q does not start with %q", text, want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(text, m) {
					t.Errorf("error %q does not say %q", text, m)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestPasswordWithoutURL(t *testing.T) {
	_, err := load(t, []string{"--nats-password", "pw"}, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Setting != "nats_url" || ce.Origin != "credentials given" {
		t.Errorf("Load = %v, want a nats_url error", err)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		is   error
		msg  string
	}{
		{"--help", []string{"--help"}, flag.ErrHelp, "Usage: promemoria serve"},
		{"-h", []string{"-h"}, flag.ErrHelp, "PROMEMORIA_REPEAT_INTERVAL"},
		{"unknown flag", []string{"--repeat-intervall", "1h"}, nil, "flag provided but not defined"},
		{"positional argument", []string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := Load("serve", tt.args, env(nil), &out)
			if err == nil || c != nil {
				t.Fatalf("Load = %v, %v; want an error", c, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want %v", err, tt.is)
			}
			if tt.is == nil && errors.Is(err, flag.ErrHelp) {
				t.Errorf("error = %v, must not be flag.ErrHelp", err)
			}
			if !strings.Contains(out.String()+err.Error(), tt.msg) {
				t.Errorf("output %q / error %q do not say %q", out.String(), err, tt.msg)
			}
		})
	}
	t.Run("help lists every setting", func(t *testing.T) {
		var out bytes.Buffer
		_, err := Load("serve", []string{"--help"}, env(nil), &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("error = %v", err)
		}
		for _, s := range Settings() {
			if !strings.Contains(out.String(), "-"+s.Flag()) || !strings.Contains(out.String(), s.Env()) {
				t.Errorf("usage does not list %s / %s", s.Flag(), s.Env())
			}
		}
	})
}

func printed(c *Config) map[string]string {
	var b bytes.Buffer
	c.Print(&b)
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		out[k] = v
	}
	return out
}

func TestPrint(t *testing.T) {
	secrets := []string{"s3cret", "pw-secret", "tok-secret"}
	tests := []struct {
		name     string
		args     []string
		want     map[string]string
		mustHide []string
	}{
		{
			name: "secrets redacted",
			args: []string{"--nats-url", "nats://alice:s3cret@nats.example:4222", "--nats-user", "alice", "--nats-password", "pw-secret", "--nats-token", "tok-secret"},
			want: map[string]string{
				"nats_url":        `"nats://<redacted>@nats.example:4222"`,
				"nats_user":       `"alice"`,
				"nats_password":   `"<redacted>"`,
				"nats_token":      `"<redacted>"`,
				"repeat_interval": `"24h0m0s"`,
				"services":        `"smartcig,simog,pcp,payments,fvoe,bdncp,ausa"`,
			},
			mustHide: secrets,
		},
		{
			name: "several URLs",
			args: []string{"--nats-url", "nats://a:s3cret@h1:4222,nats://h2:4222,tls://tok-secret@h3:4222"},
			want: map[string]string{
				"nats_url": `"nats://<redacted>@h1:4222,nats://h2:4222,tls://<redacted>@h3:4222"`,
			},
			mustHide: secrets,
		},
		{
			name: "nothing secret",
			args: []string{"--nats-url", "nats://nats.example:4222"},
			want: map[string]string{"nats_url": `"nats://nats.example:4222"`, "nats_password": `""`, "nats_token": `""`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.args, nil)
			got := printed(c)
			if len(got) != len(Settings()) {
				t.Errorf("printed %d settings, want %d", len(got), len(Settings()))
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
			var b bytes.Buffer
			c.Print(&b)
			for _, s := range tt.mustHide {
				if strings.Contains(b.String(), s) {
					t.Errorf("Print shows %q:\n%s", s, b.String())
				}
			}
		})
	}
	t.Run("URL without scheme", func(t *testing.T) {
		c := mustLoad(t, []string{"--nats-url", "alice:s3cret@nats.example:4222"}, nil)
		var b bytes.Buffer
		c.Print(&b)
		if strings.Contains(b.String(), "s3cret") {
			t.Errorf("Print shows the password:\n%s", b.String())
		}
	})
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"nats://h:4222", "nats://h:4222"},
		{"nats://u:p@h:4222", "nats://<redacted>@h:4222"},
		{"nats://token@h:4222", "nats://<redacted>@h:4222"},
		{"tls://u:p@h:4222/path@x", "tls://<redacted>@h:4222/path@x"},
		{"nats://u:p@h1:4222,nats://v:q@h2:4222", "nats://<redacted>@h1:4222,nats://<redacted>@h2:4222"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestExampleFile loads the example configuration shipped at the repo root:
// it must stay valid and equal to the defaults.
func TestExampleFile(t *testing.T) {
	got, err := Load("serve", []string{"--config", "../promemoria.example.yaml"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load("serve", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got.File = ""
	if !reflect.DeepEqual(got, def) {
		t.Errorf("the example file differs from the defaults:\n got %+v\nwant %+v", got, def)
	}
}

func scheduleIDs(s []contribution.Schedule) []string {
	ids := make([]string, len(s))
	for i, x := range s {
		ids[i] = x.ID
	}
	return ids
}

func TestContributionSchedules(t *testing.T) {
	const envJSON = `[{"id":"env-2022","from":"2022-01-01","brackets":[{"from_cents":0,"amount_cents":0},{"from_cents":15000000,"amount_cents":2500}]}]`
	const flagJSON = `[{"id":"flag-2024","from":"2024-01-01","brackets":[{"from_cents":0,"amount_cents":500}]}]`
	defIDs := []string{"anac-2021", "anac-2023"}
	tests := []struct {
		name string
		args []string
		vars map[string]string
		ids  []string
	}{
		{"default", nil, nil, defIDs},
		{"YAML list in the file", []string{"--config", "testdata/full.yaml"}, nil, []string{"anac-2021", "anac-2023", "local-2026"}},
		{"JSON string in the file", []string{"--config", "testdata/schedules_json.yaml"}, nil, []string{"only"}},
		{"anchors and merge keys in the file", []string{"--config", "testdata/schedules_anchors.yaml"}, nil, []string{"first", "second", "third"}},
		{"JSON in env", nil, map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": envJSON}, []string{"env-2022"}},
		{"env over file", []string{"--config", "testdata/full.yaml"}, map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": envJSON}, []string{"env-2022"}},
		{"flag over env over file", []string{"--config", "testdata/full.yaml", "--contribution-schedules", flagJSON},
			map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": envJSON}, []string{"flag-2024"}},
		{"a bad file value hidden by env is not read", []string{"--config", "testdata/schedules_unsorted.yaml"},
			map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": envJSON}, []string{"env-2022"}},
		{"the default as JSON", []string{"--contribution-schedules", Setting{}.defaultOf(t, "contribution_schedules")}, nil, defIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.args, tt.vars)
			if got := scheduleIDs(c.ContributionSchedules); !reflect.DeepEqual(got, tt.ids) {
				t.Errorf("schedule ids = %q, want %q", got, tt.ids)
			}
			if _, err := contribution.NewTable(c.ContributionSchedules); err != nil {
				t.Errorf("the loaded schedules do not make a table: %v", err)
			}
		})
	}
	t.Run("env JSON in full", func(t *testing.T) {
		c := mustLoad(t, nil, map[string]string{"PROMEMORIA_CONTRIBUTION_SCHEDULES": envJSON})
		want := []contribution.Schedule{{ID: "env-2022", From: "2022-01-01", Brackets: []contribution.Bracket{{FromCents: 0, AmountCents: 0}, {FromCents: 15_000_000, AmountCents: 2500}}}}
		if !reflect.DeepEqual(c.ContributionSchedules, want) {
			t.Errorf("ContributionSchedules = %+v, want %+v", c.ContributionSchedules, want)
		}
	})
	t.Run("anchors share brackets", func(t *testing.T) {
		c := mustLoad(t, []string{"--config", "testdata/schedules_anchors.yaml"}, nil)
		for _, s := range c.ContributionSchedules {
			if !reflect.DeepEqual(s.Brackets, c.ContributionSchedules[0].Brackets) {
				t.Errorf("schedule %q brackets %+v differ from the anchor's %+v", s.ID, s.Brackets, c.ContributionSchedules[0].Brackets)
			}
		}
		if got := []string{c.ContributionSchedules[1].From, c.ContributionSchedules[2].From}; !reflect.DeepEqual(got, []string{"2025-01-01", "2026-01-01"}) {
			t.Errorf("froms = %q: the merge key must not override explicit keys", got)
		}
		if want := []calendar.Closure{{Year: 2026, Month: time.June, Day: 29}}; !reflect.DeepEqual(c.ClosureDays, want) {
			t.Errorf("an unquoted date as a single value: ClosureDays = %v, want %v", c.ClosureDays, want)
		}
	})
	t.Run("YAML and JSON spellings agree", func(t *testing.T) {
		yamlCfg := mustLoad(t, []string{"--config", "testdata/full.yaml"}, nil)
		jsonCfg := mustLoad(t, []string{"--contribution-schedules", schedulesText(yamlCfg)}, nil)
		if !reflect.DeepEqual(jsonCfg.ContributionSchedules, yamlCfg.ContributionSchedules) {
			t.Errorf("JSON %+v differs from YAML %+v", jsonCfg.ContributionSchedules, yamlCfg.ContributionSchedules)
		}
	})
}

// defaultOf returns the default text of the named setting.
func (Setting) defaultOf(t *testing.T, name string) string {
	t.Helper()
	for _, s := range Settings() {
		if s.Name == name {
			return s.Def
		}
	}
	t.Fatalf("no setting %q", name)
	return ""
}

func TestCalendarSettings(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		vars     map[string]string
		hours    string
		always   bool
		timezone string
		closures []calendar.Closure
	}{
		{name: "defaults", hours: "Mon-Fri 09:00-18:00", timezone: "Europe/Rome"},
		{name: "always", args: []string{"--office-hours", "always"}, hours: "always", always: true, timezone: "Europe/Rome"},
		{name: "split day from env", vars: map[string]string{"PROMEMORIA_OFFICE_HOURS": "Mon-Fri 09:00-13:00,14:00-18:00"},
			hours: "Mon-Fri 09:00-13:00,14:00-18:00", timezone: "Europe/Rome"},
		{name: "flag over env", args: []string{"--office-hours", "Mon-Sat 08:30-13:00"}, vars: map[string]string{"PROMEMORIA_OFFICE_HOURS": "always"},
			hours: "Mon-Sat 08:30-13:00", timezone: "Europe/Rome"},
		{name: "timezone", args: []string{"--timezone", "UTC"}, hours: "Mon-Fri 09:00-18:00", timezone: "UTC"},
		{name: "timezone from env", vars: map[string]string{"PROMEMORIA_TIMEZONE": "America/New_York"}, hours: "Mon-Fri 09:00-18:00", timezone: "America/New_York"},
		{name: "closure days, spaces and duplicates", args: []string{"--closure-days", "2026-06-29, 06-29,06-29 "}, hours: "Mon-Fri 09:00-18:00", timezone: "Europe/Rome",
			closures: []calendar.Closure{{Year: 2026, Month: time.June, Day: 29}, {Month: time.June, Day: 29}}},
		{name: "closure days from env", vars: map[string]string{"PROMEMORIA_CLOSURE_DAYS": "12-07"}, hours: "Mon-Fri 09:00-18:00", timezone: "Europe/Rome",
			closures: []calendar.Closure{{Month: time.December, Day: 7}}},
		{name: "flag empties the file's closure days", args: []string{"--config", "testdata/full.yaml", "--closure-days="}, hours: "Mon-Fri 08:30-13:00,14:00-17:30", timezone: "Europe/Berlin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.args, tt.vars)
			if c.OfficeHours != tt.hours || c.Hours.String() != tt.hours {
				t.Errorf("OfficeHours %q, Hours %q; want %q", c.OfficeHours, c.Hours, tt.hours)
			}
			if c.Hours.Always() != tt.always {
				t.Errorf("Hours.Always() = %v, want %v", c.Hours.Always(), tt.always)
			}
			if c.Timezone != tt.timezone || c.Location == nil || c.Location.String() != tt.timezone {
				t.Errorf("Timezone %q, Location %v; want %q", c.Timezone, c.Location, tt.timezone)
			}
			if !reflect.DeepEqual(c.ClosureDays, tt.closures) {
				t.Errorf("ClosureDays = %v, want %v", c.ClosureDays, tt.closures)
			}
		})
	}
}

func TestServiceLists(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		vars   map[string]string
		bidder []string
	}{
		{"default", nil, nil, []string{"payments", "fvoe"}},
		{"file", []string{"--config", "testdata/full.yaml"}, nil, []string{"payments"}},
		{"env over file, spaces and duplicates", []string{"--config", "testdata/full.yaml"}, map[string]string{"PROMEMORIA_BIDDER_SERVICES": "fvoe, payments,fvoe"}, []string{"fvoe", "payments"}},
		{"flag over env", []string{"--bidder-services", "pcp"}, map[string]string{"PROMEMORIA_BIDDER_SERVICES": "fvoe"}, []string{"pcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLoad(t, tt.args, tt.vars).BidderServices; !reflect.DeepEqual(got, tt.bidder) {
				t.Errorf("BidderServices = %q, want %q", got, tt.bidder)
			}
		})
	}
}

func TestTemplatesDir(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"default: the built-in texts", nil, nil, ""},
		{"flag", []string{"--templates-dir", dir}, nil, dir},
		{"env", nil, map[string]string{"PROMEMORIA_TEMPLATES_DIR": dir}, dir},
		{"file", []string{"--config", "testdata/full.yaml"}, nil, "testdata"},
		{"flag empties the file's", []string{"--config", "testdata/full.yaml", "--templates-dir="}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLoad(t, tt.args, tt.vars).TemplatesDir; got != tt.want {
				t.Errorf("TemplatesDir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrintNewSettings(t *testing.T) {
	c := mustLoad(t, nil, nil)
	got := printed(c)
	want := map[string]string{
		"contribution_schedules": Setting{}.defaultOf(t, "contribution_schedules"),
		"office_hours":           `"Mon-Fri 09:00-18:00"`,
		"timezone":               `"Europe/Rome"`,
		"closure_days":           `""`,
		"templates_dir":          `""`,
		"bidder_services":        `"payments,fvoe"`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	if s := got["contribution_schedules"]; !strings.HasPrefix(s, `[{"id":"anac-2021","from":"2021-01-01","brackets":[{"from_cents":0,"amount_cents":0},`) || strings.ContainsAny(s, " \n") {
		t.Errorf("contribution_schedules is not printed as compact JSON: %s", s)
	}
}

// TestPrintReadsBack checks that --print-config writes a file that loads into
// the same configuration, structured schedules included.
func TestPrintReadsBack(t *testing.T) {
	c := mustLoad(t, []string{"--config", "testdata/full.yaml", "--nats-url", ""}, nil)
	var b bytes.Buffer
	c.Print(&b)
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	back := mustLoad(t, []string{"--config", path}, nil)
	c.File, back.File = "", ""
	if !reflect.DeepEqual(back, c) {
		t.Errorf("the printed configuration reads back differently:\n%s\n got %+v\nwant %+v", b.String(), back, c)
	}
}

// TestExampleFileShowsNewSettings keeps the example configuration complete for
// the calendar, contribution and advice settings.
func TestExampleFileShowsNewSettings(t *testing.T) {
	vals, err := readFile("../promemoria.example.yaml", Settings())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"contribution_schedules", "office_hours", "timezone", "closure_days", "templates_dir", "bidder_services", "smtp_url", "smtp_from", "webhook_url", "webhook_secret", "digest_wait"} {
		if _, ok := vals[name]; !ok {
			t.Errorf("the example file does not show %s", name)
		}
	}
}

// TestProbes reads the probes from the flag, the environment and the file,
// validates them with the global defaults, and names the setting in errors.
func TestProbes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(`probe_interval: 1m
probes:
  - service: pcp
    url: https://pcp.example.org/status
    expect_status: 200
    expect_body: operativo
    timeout: 2s
  - service: payments
    url: https://pagamenti.example.org/
    method: HEAD
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, []string{"--config", file}, nil)
	if len(c.Probes) != 2 {
		t.Fatalf("probes %+v, want 2", c.Probes)
	}
	if p := c.Probes[0]; p.Service != "pcp" || p.ExpectStatus != "200-200" && p.ExpectStatus != "200" || p.ExpectBody != "operativo" ||
		p.Timeout != 2*time.Second || p.Interval != time.Minute || p.Method != "GET" {
		t.Errorf("probe 1 = %+v", p)
	}
	if p := c.Probes[1]; p.Method != "HEAD" || p.Timeout != 5*time.Second || p.Interval != time.Minute {
		t.Errorf("probe 2 = %+v", p)
	}

	c = mustLoad(t, nil, map[string]string{"PROMEMORIA_PROBES": "smartcig=https://smartcig.example.org/, pcp=https://pcp.example.org/"})
	if len(c.Probes) != 2 || c.Probes[0].Service != "smartcig" || c.Probes[1].URL != "https://pcp.example.org/" || c.Probes[0].Interval != 30*time.Second {
		t.Errorf("env probes %+v", c.Probes)
	}
	c = mustLoad(t, []string{"--probe", "pcp=https://pcp.example.org/status?from=a,b"}, nil)
	if len(c.Probes) != 1 || c.Probes[0].URL != "https://pcp.example.org/status?from=a,b" {
		t.Errorf("a --probe URL with a comma: %+v", c.Probes)
	}
	c = mustLoad(t, []string{"--probe", "fvoe=https://fvoe.example.org/", "--probe", "ausa=https://ausa.example.org/"},
		map[string]string{"PROMEMORIA_PROBES": "pcp=https://pcp.example.org/"})
	if len(c.Probes) != 2 || c.Probes[0].Service != "fvoe" || c.Probes[1].Service != "ausa" {
		t.Errorf("--probe flags %+v, want them to replace the environment", c.Probes)
	}
	var out strings.Builder
	c.Print(&out)
	if !strings.Contains(out.String(), `"service":"fvoe"`) {
		t.Errorf("--print-config lacks the probes:\n%s", out.String())
	}

	if _, err := Load("serve", []string{"--probe", "pcp=ftp://user:secret@pcp.example.org/"}, env(nil), io.Discard); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a URL with credentials: %v, want an error that does not show them", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--probe", "pcp"}, "write service=URL"},
		{[]string{"--probe", "pcp=ftp://pcp.example.org/"}, "probes"},
		{[]string{"--probe", "PCP=https://pcp.example.org/"}, "probes"},
		{[]string{"--probe", "pcp=https://a.example.org/", "--probe", "pcp=https://b.example.org/"}, "probed twice"},
		{[]string{"--probes", `[{"service":"pcp","url":"https://a.example.org/","interval":"often"}]`}, "not a duration"},
		{[]string{"--probes", `[{"service":"pcp","link":"https://a.example.org/"}]`}, "not a list of probes"},
		{[]string{"--probe-failures", "0"}, "probe_failures"},
		{[]string{"--probe-interval", "200ms"}, "probe_interval"},
	} {
		_, err := Load("serve", tc.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestBidderServicesNone checks that bidder_services can be emptied with
// "none", and that the value prints back.
func TestBidderServicesNone(t *testing.T) {
	c := mustLoad(t, []string{"--bidder-services", "none"}, nil)
	if c.BidderServices == nil || len(c.BidderServices) != 0 {
		t.Fatalf("BidderServices = %#v, want an empty, non-nil list", c.BidderServices)
	}
	var out strings.Builder
	c.Print(&out)
	if !strings.Contains(out.String(), `bidder_services: "none"`) {
		t.Errorf("--print-config: %s", out.String())
	}
	if got := mustLoad(t, nil, nil).BidderServices; len(got) != 2 {
		t.Errorf("default BidderServices = %v", got)
	}
}

// TestDeliverySettings reads the receivers and checks them together: a
// bad value stops start-up with a message naming the setting.
func TestDeliverySettings(t *testing.T) {
	c := mustLoad(t, []string{"--smtp-url", "smtps://gare:s3cret@smtps.pec.example.it:465", "--smtp-from", "Ufficio gare <gare@pec.comune.example.it>",
		"--webhook-url", "https://piattaforma.example.it/hooks?token=abc", "--digest-wait", "0s"},
		map[string]string{"PROMEMORIA_WEBHOOK_SECRET": "0123456789abcdef", "PROMEMORIA_DELIVERY_BACKOFF": "1s"})
	if !c.DeliveryEnabled() || c.SMTPURL != "smtps://gare:s3cret@smtps.pec.example.it:465" || c.DigestWait != 0 || c.DeliveryBackoff != time.Second {
		t.Errorf("loaded %+v", c)
	}
	var b bytes.Buffer
	c.Print(&b)
	for _, secret := range []string{"s3cret", "token=abc", "0123456789abcdef"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("--print-config shows %q:\n%s", secret, b.String())
		}
	}
	if d := mustLoad(t, nil, nil); d.DeliveryEnabled() {
		t.Error("delivery enabled by default")
	}
	for _, c := range []struct {
		args    []string
		setting string
		want    string
	}{
		{[]string{"--smtp-url", "http://mail.example.it"}, "smtp_url", "want smtp or smtps"},
		{[]string{"--smtp-url", "smtp://:587"}, "smtp_url", "no host"},
		{[]string{"--smtp-url", "smtp://u:topsecret@h:99999", "--smtp-from", "a@b.it"}, "smtp_url", "bad port"},
		{[]string{"--smtp-url", "smtp://mail.example.it"}, "smtp_from", "need a sender"},
		{[]string{"--smtp-from", "not an address"}, "smtp_from", "not an e-mail address"},
		{[]string{"--smtp-reply-to", "x@"}, "smtp_reply_to", "not an e-mail address"},
		{[]string{"--webhook-url", "ftp://x.example"}, "webhook_url", "not an http(s) URL"},
		{[]string{"--webhook-url", "https://x.example/h", "--webhook-secret", "short"}, "webhook_secret", "at least 16 characters"},
		{[]string{"--delivery-backoff", "1m", "--delivery-backoff-max", "10s"}, "delivery_backoff_max", "shorter than delivery_backoff"},
		{[]string{"--digest-wait", "soon"}, "digest_wait", "not a duration"},
		{[]string{"--delivery-max-attempts", "0"}, "delivery_max_attempts", "out of range"},
	} {
		_, err := Load("serve", c.args, func(string) string { return "" }, io.Discard)
		var ce *Error
		if !errors.As(err, &ce) || ce.Setting != c.setting || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one about %s saying %q", c.args, err, c.setting, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%v: the error shows the password: %v", c.args, err)
		}
	}
}

// TestExampleHasEverySetting checks that promemoria.example.yaml has every
// setting of the table, naming each missing one, and that it is what
// go generate ./config writes.
func TestExampleHasEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../promemoria.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && k != "" && !strings.HasPrefix(k, "#") && !strings.HasPrefix(k, " ") {
			keys[k] = true
		}
	}
	for _, s := range Settings() {
		if !keys[s.Name] {
			t.Errorf("promemoria.example.yaml lacks the setting %s: run go generate ./config", s.Name)
		}
	}
	if !bytes.Equal(raw, Example()) {
		t.Error("promemoria.example.yaml is not what the settings table generates: run go generate ./config")
	}
}
