package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/app"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

// load builds a config the way main does, from flags; reminders go at any
// time, so that no test depends on the hour it runs at.
func load(t *testing.T, args ...string) *config.Config {
	t.Helper()
	args = append([]string{"--office-hours", "always"}, args...)
	cfg, err := config.Load("serve", args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config) *app.App {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	a, err := app.Start(context.Background(), cfg, log, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeEmbedded runs the whole service in process on an embedded
// server and checks the HTTP endpoints through a real listener.
func TestServeEmbedded(t *testing.T) {
	a := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--settle", "0s"))
	base := "http://" + a.HTTPAddr()
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	// A client reaches the embedded server over TCP and publishes an event.
	publishTender(t, a, "e1", "T1", events.Lot{LotID: "1"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := get(t, base+"/metrics")
		if strings.Contains(body, `promemoria_reminders_emitted_total{kind="cig"} 1`) &&
			strings.Contains(body, `promemoria_events_consumed_total{outcome="ok",type="tender.published"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the event and its reminder:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeExternalAuth connects to external NATS servers protected in
// different ways.
func TestServeExternalAuth(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		server  string
		url     string
		flags   []string
		wantErr string
	}{
		{"mTLS with a client certificate",
			fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }", pki.serverCert, pki.serverKey, pki.ca),
			"tls://127.0.0.1:%d", []string{"--nats-ca", pki.ca, "--nats-cert", pki.clientCert, "--nats-key", pki.clientKey}, ""},
		{"mTLS without a client certificate fails",
			fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }", pki.serverCert, pki.serverKey, pki.ca),
			"tls://127.0.0.1:%d", []string{"--nats-ca", pki.ca}, "connect to NATS"},
		{"NKey user", fmt.Sprintf("authorization { users = [ { nkey: %q } ] }", pub),
			"nats://127.0.0.1:%d", []string{"--nats-nkey", seedFile}, ""},
		{"user and password", `authorization { user: "promemoria", password: "s3cret-pw" }`,
			"nats://127.0.0.1:%d", []string{"--nats-user", "promemoria", "--nats-password", "s3cret-pw"}, ""},
		{"wrong password fails clearly", `authorization { user: "promemoria", password: "s3cret-pw" }`,
			"nats://127.0.0.1:%d", []string{"--nats-user", "promemoria", "--nats-password", "wrong-pw"}, "Authorization Violation"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf := filepath.Join(dir, fmt.Sprintf("server-%d.conf", i))
			if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\n"+tc.server+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			srv, err := natsserver.Start(natsserver.Options{ConfigFile: conf, DataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop()
			port := srv.Addr().(*net.TCPAddr).Port
			args := append([]string{"--nats-url", fmt.Sprintf(tc.url, port), "--http-listen", ""}, tc.flags...)
			cfg := load(t, args...)
			logs := &syncBuffer{}
			a, err := app.Start(context.Background(), cfg, zerolog.New(logs), app.Options{})
			if tc.wantErr != "" {
				if err == nil {
					_ = a.Stop()
					t.Fatal("connected, want an error")
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not say %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "wrong-pw") || strings.Contains(logs.String(), "wrong-pw") {
					t.Error("the password leaked into the error or the logs")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.Worker().Ready() {
				t.Error("worker not ready")
			}
			if err := a.Stop(); err != nil {
				t.Error(err)
			}
			if strings.Contains(logs.String(), "s3cret-pw") {
				t.Error("the password leaked into the logs")
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "promemoria test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	var p pki
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestTemplatesDirStopsStartup checks that an override template that does
// not render stops start-up with an error naming the file and the setting,
// before any server starts.
func TestTemplatesDirStopsStartup(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "it"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "it", "reminder.cig.tmpl")
	if err := os.WriteFile(bad, []byte("Gentile {{.NoSuchField}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "", "--templates-dir", dir)
	_, err := app.Start(context.Background(), cfg, zerolog.Nop(), app.Options{})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "templates_dir") {
		t.Fatalf("start with a broken template: %v, want an error naming %s and templates_dir", err, bad)
	}
}

// TestProbeDetectsTheOutage runs the service with a probe on a real HTTP
// server: the probe sees the service fail and publishes portal.down, a
// tender published meanwhile waits, and once the probe sees the service
// back its lot is reminded.
func TestProbeDetectsTheOutage(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "manutenzione", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "servizio operativo")
	}))
	defer srv.Close()
	a := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "", "--settle", "0s",
		"--probe", "pcp="+srv.URL, "--probe-interval", "1s", "--probe-timeout", "1s", "--probe-failures", "2", "--probe-successes", "2"))
	kv := a.Worker().State()
	ctx := context.Background()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		natstest.WaitFor(t, 20*time.Second, what, cond)
	}
	pcp := func() *worker.ServiceStatus {
		svcs, err := worker.Services(ctx, kv)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs {
			if s.Name == "pcp" {
				return &s
			}
		}
		return nil
	}
	waitUntil("the probe to report pcp down", func() bool { s := pcp(); return s != nil && !s.Up })

	publishTender(t, a, "t-probe", "T-PROBE", events.Lot{LotID: "1", CIGService: "pcp"})
	reminded := func() int {
		gaps, err := worker.Pending(ctx, kv, worker.PendingFilter{TenderID: "T-PROBE"}, 0, time.Now())
		if err != nil || len(gaps) != 1 {
			return -1
		}
		return gaps[0].RemindersSent
	}
	waitUntil("the tender's gap", func() bool { return reminded() >= 0 })
	if n := reminded(); n != 0 {
		t.Fatalf("reminded %d times while the probe sees pcp down", n)
	}

	failing.Store(false)
	waitUntil("the probe to report pcp up", func() bool { s := pcp(); return s != nil && s.Up })
	waitUntil("the reminder once pcp is back", func() bool { return reminded() == 1 })
	if s := pcp(); s.LastOutage == nil || s.LastOutage.To.IsZero() || s.Outages != 1 {
		t.Errorf("pcp after the outage: %+v", s)
	}
}

// publishTender publishes, over TCP as a producer would, a tender.published
// with the given lots and event id.
func publishTender(t *testing.T, a *app.App, id, tenderID string, lots ...events.Lot) {
	t.Helper()
	nc, err := nats.Connect(a.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	data, _ := json.Marshal(events.TenderPublished{
		TenderID: tenderID, Title: "x", RUP: events.Person{Name: "R", Email: "r@example.it"},
		PublishedAt: time.Now(), OfferDeadline: time.Now().Add(30 * 24 * time.Hour), Lots: lots,
	})
	env, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "test", Type: events.TypeTenderPublished, Time: time.Now().UTC(), Data: data})
	msg := nats.NewMsg("procurement.tender.published")
	msg.Data, msg.Header = env, nats.Header{events.HeaderMsgID: []string{id}}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}
