// Package console is promemoria's web console: server-rendered pages, in
// Italian and English, for the people who run promemoria during an ANAC
// outage. Services shows which ANAC services are down, since when, whether
// they have settled and their outages of the last 90 days; Gaps lists the
// open gaps with filters, a page at a time; Tender shows one tender's lots,
// CIGs, bids, gaps and every message about it; Activity shows the latest
// messages on the output stream, dead letters with their reason and
// original bytes included. It reads the state bucket and the output stream
// and never writes. Pages are html/template (every text from an event is
// escaped), assets are embedded, and no page has an inline script, so the
// Content-Security-Policy the HTTP server sets can forbid them.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the templates, each with the layout.
var pages = []string{"services", "gaps", "tender", "activity", "message", "error"}

// Options are what the console reads and how it shows it.
type Options struct {
	// JS reaches the state bucket's stream and the output stream.
	JS jetstream.JetStream
	// State is the state bucket (services, tenders, gaps).
	State jetstream.KeyValue
	// Subjects are the configured subjects.
	Subjects events.Subjects
	// Services are the configured ANAC services: shown even before any
	// event names them.
	Services []string
	// Settle is how long a service must stay up before its gaps are
	// reminded; Now is the worker's clock (default time.Now).
	Settle time.Duration
	Now    func() time.Time
	// Location is where times are shown (default Europe/Rome's, as
	// configured by timezone).
	Location *time.Location
	// Version is shown in the footer.
	Version string
	Logger  zerolog.Logger
}

// Console serves the pages.
type Console struct {
	o     Options
	r     *reader
	tmpl  map[string]map[lang]*template.Template
	files http.Handler
}

// queryTimeout bounds the reads of one page.
const queryTimeout = 15 * time.Second

// New returns a console; it fails only if its embedded templates do not
// parse, which the tests rule out.
func New(o Options) (*Console, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	c := &Console{o: o, r: &reader{js: o.JS, state: o.State}, tmpl: map[string]map[lang]*template.Template{}}
	for _, p := range pages {
		c.tmpl[p] = map[lang]*template.Template{}
		for _, l := range langs {
			t, err := template.New("layout.html").Funcs(c.funcs(l)).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
			if err != nil {
				return nil, fmt.Errorf("console template %s: %w", p, err)
			}
			c.tmpl[p][l] = t
		}
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	c.files = http.StripPrefix("/static/", http.FileServerFS(static))
	return c, nil
}

// Register adds the console's routes to mux: / (services), /gaps,
// /tender, /activity, /activity/{seq}, /activity/{seq}/data and /static/.
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.services)
	mux.HandleFunc("GET /gaps", c.gaps)
	mux.HandleFunc("GET /tender", c.tender)
	mux.HandleFunc("GET /activity", c.activity)
	mux.HandleFunc("GET /activity/{seq}", c.message)
	mux.HandleFunc("GET /activity/{seq}/data", c.messageData)
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		c.files.ServeHTTP(w, r)
	}))
}

// view is what the layout needs, with a page's own data.
type view struct {
	Lang    lang
	Title   string
	Nav     string
	Now     time.Time
	Langs   []langLink
	Version string
	// Refresh asks the page's script to reload it every 30 seconds.
	Refresh bool
	Data    any
}

type langLink struct {
	Code, Name, Href string
	Current          bool
}

// render executes page in the request's language; a failure is logged and
// answered with a plain 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, nav, title string, refresh bool, data any) {
	l, _ := negotiate(r)
	v := view{Lang: l, Title: title, Nav: nav, Now: c.o.Now(), Version: c.o.Version, Refresh: refresh, Data: data}
	for _, other := range langs {
		q := r.URL.Query()
		q.Set("lang", string(other))
		name := "Italiano"
		if other == langEN {
			name = "English"
		}
		v.Langs = append(v.Langs, langLink{Code: string(other), Name: name, Href: r.URL.Path + "?" + q.Encode(), Current: other == l})
	}
	var buf bytes.Buffer
	if err := c.tmpl[page][l].Execute(&buf, v); err != nil {
		c.o.Logger.Error().Err(err).Str("component", "console").Str("page", page).Msg("console page failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", string(l))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Accept-Language")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page: the state could not be read (503), or the
// request is wrong (400) or names nothing (404).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	l, _ := negotiate(r)
	msg := text(l, "error.state")
	switch status {
	case http.StatusNotFound:
		msg = text(l, "error.notfound")
	case http.StatusBadRequest:
		msg = text(l, "error.badquery") + ": " + err.Error()
	default:
		c.o.Logger.Error().Err(err).Str("component", "console").Str("path", r.URL.Path).Msg("console could not read the state")
	}
	c.render(w, r, status, "error", "", text(l, "error.title"), false, msg)
}

func (c *Console) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), queryTimeout)
}

// funcs are the template functions in l.
func (c *Console) funcs(l lang) template.FuncMap {
	return template.FuncMap{
		"t":    func(key string) string { return text(l, key) },
		"tf":   func(key string, args ...any) string { return textf(l, key, args...) },
		"when": func(t time.Time) string { return formatTime(l, c.o.Location, t) },
		"iso": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"euro":    func(cents int64) string { return formatEuro(l, cents) },
		"span":    func(d time.Duration) string { return formatSpan(l, d) },
		"seconds": func(s int64) time.Duration { return time.Duration(s) * time.Second },
		"svc":     func(id string) string { return serviceName(l, id) },
		"kind":    func(k events.Kind) string { return text(l, "kind."+string(k)) },
		"state":   func(s string) string { return text(l, "state."+s) },
		"type":    func(t events.Type) string { return text(l, "type."+string(t)) },
		"waiting": func(w string) string {
			if w == "cig" {
				return text(l, "waiting.cig")
			}
			return serviceName(l, w)
		},
		// href builds an internal link with its query (pairs of name and
		// value; empty values left out) and the language.
		"href": func(path string, kv ...any) string {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if v := fmt.Sprint(kv[i+1]); v != "" && v != "0" {
					q.Set(fmt.Sprint(kv[i]), v)
				}
			}
			q.Set("lang", string(l))
			return path + "?" + q.Encode()
		},
		"join": strings.Join,
	}
}

// errStatus maps a read error to the page's status.
func errStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}
