package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// v1Timeout bounds one /v1 query of the state bucket.
const v1Timeout = 10 * time.Second

// registerV1 adds the read-only JSON API: the same data as the pending and
// services commands.
//
//	GET /v1/pending?service=&tender_id=&kind=&all=   {"pending": [...]}
//	GET /v1/services                            {"services": [...]}
//
// Errors are {"error": "..."} with status 400 (bad query), 503 (worker not
// running) or 500 (state unreadable).
func (a *App) registerV1(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/pending", a.v1Pending)
	mux.HandleFunc("GET /v1/services", a.v1Services)
}

func (a *App) v1Pending(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "service", "tender_id", "kind", "all"); err != nil {
		writeJSONError(w, http.StatusBadRequest, err)
		return
	}
	f := worker.PendingFilter{Service: q.Get("service"), TenderID: q.Get("tender_id"), Kind: events.Kind(q.Get("kind"))}
	if v := q.Get("all"); v != "" {
		all, err := strconv.ParseBool(v)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, fmt.Errorf("all=%q: want true or false", v))
			return
		}
		f.All = all
	}
	if a.worker == nil {
		writeJSONError(w, http.StatusServiceUnavailable, errors.New("the worker is not running"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), v1Timeout)
	defer cancel()
	gaps, err := worker.Pending(ctx, a.worker.State(), f, a.worker.Settle(), a.worker.Now())
	switch {
	case errors.Is(err, worker.ErrBadFilter):
		writeJSONError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		a.log.Error().Err(err).Msg("/v1/pending failed")
		writeJSONError(w, http.StatusInternalServerError, fmt.Errorf("read state: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Pending []worker.PendingGap `json:"pending"`
	}{gaps})
}

func (a *App) v1Services(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		writeJSONError(w, http.StatusBadRequest, err)
		return
	}
	if a.worker == nil {
		writeJSONError(w, http.StatusServiceUnavailable, errors.New("the worker is not running"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), v1Timeout)
	defer cancel()
	svcs, err := worker.Services(ctx, a.worker.State())
	if err != nil {
		a.log.Error().Err(err).Msg("/v1/services failed")
		writeJSONError(w, http.StatusInternalServerError, fmt.Errorf("read state: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Services []worker.ServiceStatus `json:"services"`
	}{svcs})
}

// onlyParams rejects query parameters other than allowed, and any given
// twice, so a typo (?tender=) is an error rather than an unfiltered list.
func onlyParams(q map[string][]string, allowed ...string) error {
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return fmt.Errorf("unknown query parameter %q: this endpoint takes none", k)
			}
			return fmt.Errorf("unknown query parameter %q: want %v", k, allowed)
		}
		if len(v) > 1 {
			return fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
