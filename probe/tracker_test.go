package probe_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/promemoria/promemoria/probe"
)

func TestTracker(t *testing.T) {
	t0 := time.Date(2021, 5, 3, 6, 30, 0, 0, time.UTC)
	// A step is one check: "ok" (HTTP 200), "ok204", or a problem.
	tests := []struct {
		name      string
		failures  int
		successes int
		published map[string]bool
		steps     []string
		want      map[int]probe.Transition // by step index
	}{
		{
			name: "down after 3 failures, not before", failures: 3, successes: 2,
			steps: []string{"ok", "HTTP 503", "HTTP 503", "HTTP 503", "HTTP 503"},
			want:  map[int]probe.Transition{3: {Up: false, At: t0.Add(1 * time.Minute), Notice: "HTTP 503 on 3 checks"}},
		},
		{
			name: "up after 2 successes", failures: 3, successes: 2, published: map[string]bool{"pcp": false},
			steps: []string{"HTTP 503", "ok", "ok", "ok"},
			want:  map[int]probe.Transition{2: {Up: true, At: t0.Add(1 * time.Minute), Notice: "up again: HTTP 200 on 2 checks"}},
		},
		{
			name: "a flap shorter than the threshold produces nothing", failures: 3, successes: 2,
			steps: []string{"HTTP 503", "HTTP 503", "ok", "HTTP 503", "HTTP 503", "ok", "timeout after 5s"},
		},
		{
			name: "a blip of success while down produces nothing", failures: 3, successes: 2, published: map[string]bool{"pcp": false},
			steps: []string{"ok", "HTTP 503", "ok", "timeout after 5s"},
		},
		{
			name: "the run starts again after an interruption", failures: 2, successes: 2,
			steps: []string{"HTTP 503", "ok", "HTTP 502", "HTTP 502"},
			want:  map[int]probe.Transition{3: {Up: false, At: t0.Add(2 * time.Minute), Notice: "HTTP 502 on 2 checks"}},
		},
		{
			name: "mixed problems are counted each", failures: 3, successes: 2,
			steps: []string{"HTTP 503", "timeout after 5s", "HTTP 503"},
			want:  map[int]probe.Transition{2: {Up: false, At: t0, Notice: "HTTP 503 on 2 checks, timeout after 5s on 1 check"}},
		},
		{
			name: "a full outage and recovery", failures: 2, successes: 2,
			steps: []string{"connection refused", "connection refused", "ok204", "ok"},
			want: map[int]probe.Transition{
				1: {Up: false, At: t0, Notice: "connection refused on 2 checks"},
				3: {Up: true, At: t0.Add(2 * time.Minute), Notice: "up again: HTTP 204 on 1 check, HTTP 200 on 1 check"},
			},
		},
		{
			name: "unknown state is up: successes publish nothing", failures: 1, successes: 1,
			steps: []string{"ok", "ok"},
		},
		{
			name: "published down: failures publish nothing", failures: 1, successes: 1, published: map[string]bool{"pcp": false},
			steps: []string{"HTTP 500", "HTTP 500"},
		},
		{
			name: "thresholds below 1 count as 1", failures: 0, successes: -1,
			steps: []string{"HTTP 500", "ok"},
			want: map[int]probe.Transition{
				0: {Up: false, At: t0, Notice: "HTTP 500 on 1 check"},
				1: {Up: true, At: t0.Add(time.Minute), Notice: "up again: HTTP 200 on 1 check"},
			},
		},
		{
			name: "another service's state does not matter", failures: 1, successes: 1, published: map[string]bool{"smartcig": false},
			steps: []string{"ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := probe.NewTracker(tt.failures, tt.successes, tt.published)
			for i, step := range tt.steps {
				r := probe.Result{Service: "pcp", URL: "https://pcp.example/", At: t0.Add(time.Duration(i) * time.Minute)}
				switch step {
				case "ok":
					r.OK, r.Status = true, 200
				case "ok204":
					r.OK, r.Status = true, 204
				default:
					r.Problem = step
				}
				got, ok := tr.Observe(r)
				want, wantOK := tt.want[i]
				want.Service = "pcp"
				if ok != wantOK || (ok && !reflect.DeepEqual(got, want)) {
					t.Fatalf("step %d (%s): Observe = %+v, %v; want %+v, %v", i, step, got, ok, want, wantOK)
				}
			}
		})
	}
}

func TestTrackerDoesNotKeepTheCallersMap(t *testing.T) {
	published := map[string]bool{"pcp": false}
	tr := probe.NewTracker(1, 1, published)
	published["pcp"] = true
	if _, ok := tr.Observe(probe.Result{Service: "pcp", OK: true, Status: 200, At: time.Now()}); !ok {
		t.Fatal("the tracker read a change made to the map after NewTracker")
	}
}
