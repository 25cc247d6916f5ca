package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/promemoria/promemoria/app"
)

// authFile writes an http_auth file with user operatore (password
// "parola-segreta-1") and one bearer token, and returns its path and the
// token.
func authFile(t *testing.T) (path, token string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("parola-segreta-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	token = "tok-5f2b8e0c9a7d4e1f"
	sum := sha256.Sum256([]byte(token))
	path = filepath.Join(t.TempDir(), "http_auth")
	content := "# promemoria console\noperatore:" + string(hash) + "\n\ntoken:" + hex.EncodeToString(sum[:]) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// request sends a GET with the given Authorization header ("" for none).
func request(t *testing.T, url, authorization string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// TestHTTPAuth runs the service with an http_auth file: the console and
// /v1 need a password or a bearer token, the health endpoints stay open,
// refusals are counted and the log never shows a secret.
func TestHTTPAuth(t *testing.T) {
	path, token := authFile(t)
	logs := &syncBuffer{}
	cfg := load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--http-auth", path)
	a, err := app.Start(context.Background(), cfg, zerolog.New(logs), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	base := "http://" + a.HTTPAddr()

	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/", "", 401},
		{"/v1/pending", "", 401},
		{"/gaps", basic("operatore", "sbagliata"), 401},
		{"/gaps", basic("nessuno", "parola-segreta-1"), 401},
		{"/activity", "Bearer not-the-token", 401},
		{"/", basic("operatore", "parola-segreta-1"), 200},
		{"/gaps", basic("operatore", "parola-segreta-1"), 200},
		{"/v1/services", "Bearer " + token, 200},
		{"/static/console.css", "Bearer " + token, 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	} {
		code, h := request(t, base+c.path, c.auth)
		if code != c.want {
			t.Errorf("%s with %q: %d, want %d", c.path, c.auth, code, c.want)
		}
		if code == 401 && !strings.Contains(strings.Join(h.Values("WWW-Authenticate"), " "), "Basic realm=") {
			t.Errorf("%s: 401 without WWW-Authenticate: %v", c.path, h)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: security headers missing: %v", c.path, h)
		}
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`promemoria_http_unauthorized_total{scheme="none"} 2`, `promemoria_http_unauthorized_total{scheme="basic"} 2`, `promemoria_http_unauthorized_total{scheme="bearer"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{"sbagliata", "parola-segreta-1", "not-the-token", token} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows the secret %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "wrong credentials") {
		t.Error("wrong credentials were not logged")
	}
}

// TestHTTPAuthPublic checks that a non-loopback listener without http_auth
// serves the health endpoints but refuses the console and /v1, and that
// http_auth_all guards the health endpoints too.
func TestHTTPAuthPublic(t *testing.T) {
	a := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0"))
	base := "http://127.0.0.1:" + a.HTTPAddr()[strings.LastIndex(a.HTTPAddr(), ":")+1:]
	for path, want := range map[string]int{"/": 403, "/gaps": 403, "/v1/pending": 403, "/healthz": 200, "/readyz": 200, "/metrics": 200} {
		if code, _ := request(t, base+path, ""); code != want {
			t.Errorf("public, no http_auth: %s %d, want %d", path, code, want)
		}
	}

	path, token := authFile(t)
	b := start(t, load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--http-auth", path, "--http-auth-all"))
	base = "http://" + b.HTTPAddr()
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		if code, _ := request(t, base+p, ""); code != 401 {
			t.Errorf("http_auth_all: %s without credentials: %d, want 401", p, code)
		}
		if code, _ := request(t, base+p, "Bearer "+token); code != 200 {
			t.Errorf("http_auth_all: %s with the token: %d, want 200", p, code)
		}
	}
}

// TestHTTPAuthFile checks that a bad credentials file stops start-up with
// the line at fault, never its content.
func TestHTTPAuthFile(t *testing.T) {
	for name, content := range map[string]string{
		"plain password": "operatore:parola-in-chiaro\n",
		"short token":    "token:abcdef\n",
		"no colon":       "operatore\n",
		"empty":          "# nothing\n",
	} {
		path := filepath.Join(t.TempDir(), "http_auth")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := load(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--http-auth", path)
		a, err := app.Start(context.Background(), cfg, zerolog.Nop(), app.Options{})
		if err == nil {
			_ = a.Stop()
			t.Errorf("%s: start-up accepted %q", name, content)
			continue
		}
		if !strings.Contains(err.Error(), "http_auth") || strings.Contains(err.Error(), "parola-in-chiaro") || strings.Contains(err.Error(), "abcdef") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}
