package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
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
		Concurrency:         32,
		MaxAttempts:         10,
		DedupWindow:         24 * time.Hour,
		Replicas:            1,
		MaxEventBytes:       64 << 10,
		HTTPListen:          "127.0.0.1:8080",
		LogLevel:            "info",
		LogFormat:           "json",
		DrainTimeout:        30 * time.Second,
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
	for _, name := range []string{"nats_url", "listen", "data_dir", "subject_prefix", "settle", "repeat_interval", "escalate_before", "default_cig_service"} {
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
			setting: "concurrency", origin: "flag --concurrency", msg: []string{"out of range", "1 to 4096"},
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
