package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// credentials are the HTTP credentials of the http_auth file: users with
// the bcrypt hash of their password (basic authentication) and the SHA-256
// digests of bearer tokens. Neither passwords nor tokens are kept.
type credentials struct {
	users  map[string][]byte
	tokens [][sha256.Size]byte

	// verified remembers the digests of basic credentials already checked
	// against their bcrypt hash, so that a browser's every request does not
	// cost a bcrypt comparison; bounded by maxVerified.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]bool
}

// maxVerified bounds the cache of checked basic credentials.
const maxVerified = 1024

// loadCredentials reads an http_auth file: one credential a line,
// user:<bcrypt hash> or token:<64 hex digits of SHA-256>; blank lines and
// lines starting with # are skipped. An error names the line, never its
// content.
func loadCredentials(path string) (*credentials, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config http_auth %s: %w", path, err)
	}
	c := &credentials{users: map[string][]byte{}, verified: map[[sha256.Size]byte]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, secret, ok := strings.Cut(line, ":")
		if !ok || name == "" || secret == "" {
			return nil, fmt.Errorf("config http_auth %s line %d: write user:<bcrypt hash> or token:<sha256 hex of the token>", path, n)
		}
		if name == "token" {
			d, err := hex.DecodeString(secret)
			if err != nil || len(d) != sha256.Size {
				return nil, fmt.Errorf("config http_auth %s line %d: a token is given as the 64 hex digits of its SHA-256 (printf %%s \"$TOKEN\" | sha256sum)", path, n)
			}
			c.tokens = append(c.tokens, [sha256.Size]byte(d))
			continue
		}
		if _, err := bcrypt.Cost([]byte(secret)); err != nil {
			return nil, fmt.Errorf("config http_auth %s line %d: user %q: the password is given as a bcrypt hash (htpasswd -nbB user password): %w", path, n, name, err)
		}
		if _, dup := c.users[name]; dup {
			return nil, fmt.Errorf("config http_auth %s line %d: user %q is listed twice", path, n, name)
		}
		c.users[name] = []byte(secret)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config http_auth %s: %w", path, err)
	}
	if len(c.users) == 0 && len(c.tokens) == 0 {
		return nil, fmt.Errorf("config http_auth %s: no credential: write user:<bcrypt hash> or token:<sha256 hex> lines", path)
	}
	return c, nil
}

// check reports whether r carries valid credentials, and which scheme it
// tried ("basic", "bearer" or "none").
func (c *credentials) check(r *http.Request) (ok bool, scheme string) {
	h := r.Header.Get("Authorization")
	if tok, found := strings.CutPrefix(h, "Bearer "); found {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		match := 0
		for _, t := range c.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		return match == 1, "bearer"
	}
	user, pass, found := r.BasicAuth()
	if !found {
		return false, "none"
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	c.mu.Lock()
	known := c.verified[key]
	c.mu.Unlock()
	if known {
		return true, "basic"
	}
	hash, exists := c.users[user]
	if !exists {
		// Spend the same time as for a known user, so that the answer's
		// delay does not tell which users exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		return false, "basic"
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false, "basic"
	}
	c.mu.Lock()
	if len(c.verified) >= maxVerified {
		clear(c.verified)
	}
	c.verified[key] = true
	c.mu.Unlock()
	return true, "basic"
}

// dummyHash is compared against for unknown users.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("promemoria"), bcrypt.DefaultCost)

// isLoopback reports whether a host:port listens on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (all interfaces) is not.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errNoAuth is why the console and /v1 are refused on a public listener
// without credentials.
var errNoAuth = errors.New("the console and /v1 are not served: http_listen is not a loopback address and http_auth is not set")

// securityHeaders are set on every HTTP answer: no inline script or style,
// no framing, no content sniffing, no referrer leaving the console.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// guard is the HTTP server's outer handler: it sets the security headers,
// lets the health endpoints through (unless http_auth_all), refuses the
// rest on a public listener without credentials, and asks for credentials
// when they are configured. A refusal for bad credentials is counted and
// logged without them.
func (a *App) guard(next http.Handler, creds *credentials, public bool, unauthorized func(scheme string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		open := !a.cfg.HTTPAuthAll && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics")
		switch {
		case open:
		case creds == nil && public:
			http.Error(w, errNoAuth.Error()+" (see README, Access control)", http.StatusForbidden)
			return
		case creds != nil:
			ok, scheme := creds.check(r)
			if !ok {
				unauthorized(scheme)
				if scheme != "none" {
					a.log.Warn().Str("component", "http").Str("scheme", scheme).Str("remote", r.RemoteAddr).
						Str("path", r.URL.Path).Msg("HTTP request refused: wrong credentials")
				}
				w.Header().Set("WWW-Authenticate", `Basic realm="promemoria", charset="UTF-8"`)
				w.Header().Add("WWW-Authenticate", `Bearer realm="promemoria"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
