package outage

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

// t0 is the start of the May 2021 outage of the ANAC portal.
var t0 = time.Date(2021, 5, 3, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func down(d time.Duration) Transition { return Transition{At: at(d), Up: false} }
func up(d time.Duration) Transition   { return Transition{At: at(d), Up: true} }

// permutations returns every ordering of xs.
func permutations[T any](xs []T) [][]T {
	if len(xs) <= 1 {
		return [][]T{append([]T(nil), xs...)}
	}
	var out [][]T
	for i := range xs {
		rest := make([]T, 0, len(xs)-1)
		rest = append(rest, xs[:i]...)
		rest = append(rest, xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]T{xs[i]}, p...))
		}
	}
	return out
}

// build applies ts in order to a fresh service.
func build(ts ...Transition) *Service {
	s := &Service{Name: "smartcig"}
	for _, t := range ts {
		s.Apply(t)
	}
	return s
}

type state struct {
	Up        bool
	UpSince   time.Time
	DownSince time.Time
	Outages   []events.Outage
}

func stateOf(s *Service) state {
	return state{Up: s.Up(), UpSince: s.UpSince(), DownSince: s.DownSince(), Outages: s.Outages()}
}

func TestApplyOrderIndependent(t *testing.T) {
	tests := []struct {
		name    string
		history []Transition
		want    state
	}{
		{
			name:    "two outages, ends up",
			history: []Transition{down(0), up(48 * time.Hour), down(50 * time.Hour), up(51 * time.Hour), up(52 * time.Hour)},
			want: state{
				Up: true, UpSince: at(51 * time.Hour),
				Outages: []events.Outage{{From: at(0), To: at(48 * time.Hour)}, {From: at(50 * time.Hour), To: at(51 * time.Hour)}},
			},
		},
		{
			name:    "ends down, repeated downs",
			history: []Transition{down(0), up(2 * time.Hour), down(3 * time.Hour), down(4 * time.Hour), up(time.Hour)},
			want: state{
				Up: false, DownSince: at(3 * time.Hour),
				Outages: []events.Outage{{From: at(0), To: at(time.Hour)}, {From: at(3 * time.Hour)}},
			},
		},
		{
			name:    "down and up at the same instant among others",
			history: []Transition{up(5 * time.Hour), down(5 * time.Hour), down(time.Hour), up(3 * time.Hour), down(4 * time.Hour)},
			want: state{
				Up: true, UpSince: at(5 * time.Hour),
				Outages: []events.Outage{{From: at(time.Hour), To: at(3 * time.Hour)}, {From: at(4 * time.Hour), To: at(5 * time.Hour)}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perms := permutations(tt.history)
			if len(perms) != 120 {
				t.Fatalf("got %d permutations, want 120", len(perms))
			}
			ref := build(perms[0]...)
			if got := stateOf(ref); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("state = %+v, want %+v", got, tt.want)
			}
			for _, p := range perms[1:] {
				s := build(p...)
				if got := stateOf(s); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("order %v: state = %+v, want %+v", p, got, tt.want)
				}
				if !reflect.DeepEqual(s.Transitions, ref.Transitions) {
					t.Fatalf("order %v: transitions = %v, want %v", p, s.Transitions, ref.Transitions)
				}
			}
		})
	}
}

func TestApplyDuplicates(t *testing.T) {
	tests := []struct {
		name string
		dup  Transition
	}{
		{"same down", down(0)},
		{"same up", up(48 * time.Hour)},
		{"same instant in another zone", Transition{At: at(48 * time.Hour).In(time.FixedZone("CEST", 2*3600)), Up: true}},
		{"same instant other notice", Transition{At: at(0), Up: false, Notice: "comunicato 6 maggio"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build(down(0), up(48*time.Hour))
			before := append([]Transition(nil), s.Transitions...)
			if s.Apply(tt.dup) {
				t.Errorf("Apply(%v) = true for a duplicate, want false", tt.dup)
			}
			if !reflect.DeepEqual(s.Transitions, before) {
				t.Errorf("transitions = %v, want unchanged %v", s.Transitions, before)
			}
		})
	}
}

func TestApplyReportsChange(t *testing.T) {
	s := &Service{}
	if !s.Apply(down(0)) {
		t.Fatal("first Apply = false, want true")
	}
	if !s.Apply(up(time.Hour)) {
		t.Fatal("Apply of a new up = false, want true")
	}
	if got := len(s.Transitions); got != 2 {
		t.Fatalf("len = %d, want 2", got)
	}
	// Stored in UTC whatever the zone given.
	rome := time.FixedZone("CEST", 2*3600)
	s.Apply(Transition{At: at(2 * time.Hour).In(rome)})
	if loc := s.Transitions[2].At.Location(); loc != time.UTC {
		t.Errorf("stored location = %v, want UTC", loc)
	}
}

func TestStaleDownDoesNotReopen(t *testing.T) {
	tests := []struct {
		name string
		late Transition
		want state
	}{
		{
			name: "down older than latest up",
			late: down(24 * time.Hour),
			want: state{Up: true, UpSince: at(48 * time.Hour), Outages: []events.Outage{{From: at(0), To: at(48 * time.Hour)}}},
		},
		{
			name: "down older than everything",
			late: down(-time.Hour),
			want: state{Up: true, UpSince: at(48 * time.Hour), Outages: []events.Outage{{From: at(-time.Hour), To: at(48 * time.Hour)}}},
		},
		{
			name: "down newer than latest up reopens",
			late: down(49 * time.Hour),
			want: state{Up: false, DownSince: at(49 * time.Hour), Outages: []events.Outage{{From: at(0), To: at(48 * time.Hour)}, {From: at(49 * time.Hour)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build(down(0), up(48*time.Hour))
			s.Apply(tt.late)
			if got := stateOf(s); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("state = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSameInstantDownSortsFirst(t *testing.T) {
	for _, order := range [][]Transition{{down(time.Hour), up(time.Hour)}, {up(time.Hour), down(time.Hour)}} {
		t.Run(fmt.Sprintf("first up=%v", order[0].Up), func(t *testing.T) {
			s := build(order...)
			if !s.Up() {
				t.Fatal("Up() = false, want true: the up at the same instant wins")
			}
			if got := s.UpSince(); !got.Equal(at(time.Hour)) {
				t.Errorf("UpSince = %v, want %v", got, at(time.Hour))
			}
			if s.Transitions[0].Up || !s.Transitions[1].Up {
				t.Errorf("transitions = %v, want down then up", s.Transitions)
			}
			want := []events.Outage{{From: at(time.Hour), To: at(time.Hour)}}
			if got := s.Outages(); !reflect.DeepEqual(got, want) {
				t.Errorf("Outages = %v, want %v", got, want)
			}
		})
	}
}

func TestEmptyService(t *testing.T) {
	s := &Service{Name: "pcp"}
	if !s.Up() {
		t.Error("Up() = false for a service never reported down")
	}
	if !s.UpSince().IsZero() || !s.DownSince().IsZero() {
		t.Errorf("UpSince = %v, DownSince = %v, want zero", s.UpSince(), s.DownSince())
	}
	if got := s.Outages(); got != nil {
		t.Errorf("Outages = %v, want nil", got)
	}
	if o, ok := s.LastOutage(); ok || o != (events.Outage{}) {
		t.Errorf("LastOutage = %v, %v; want zero, false", o, ok)
	}
	if r, ok := s.ReadyAt(5 * time.Minute); !ok || !r.IsZero() {
		t.Errorf("ReadyAt = %v, %v; want zero, true", r, ok)
	}
}

func TestUpSinceDownSince(t *testing.T) {
	tests := []struct {
		name      string
		history   []Transition
		upSince   time.Time
		downSince time.Time
	}{
		{"only ups", []Transition{up(time.Hour), up(2 * time.Hour)}, at(time.Hour), time.Time{}},
		{"only downs", []Transition{down(time.Hour), down(2 * time.Hour)}, time.Time{}, at(time.Hour)},
		{"ups after a down", []Transition{down(0), up(time.Hour), up(2 * time.Hour)}, at(time.Hour), time.Time{}},
		{"downs after an up", []Transition{up(0), down(time.Hour), down(2 * time.Hour)}, time.Time{}, at(time.Hour)},
		{"late up between down and up", []Transition{down(0), up(10 * time.Hour), up(5 * time.Hour)}, at(5 * time.Hour), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build(tt.history...)
			if got := s.UpSince(); !got.Equal(tt.upSince) {
				t.Errorf("UpSince = %v, want %v", got, tt.upSince)
			}
			if got := s.DownSince(); !got.Equal(tt.downSince) {
				t.Errorf("DownSince = %v, want %v", got, tt.downSince)
			}
		})
	}
}

func TestMaxHistoryKeepsNewest(t *testing.T) {
	s := &Service{}
	n := MaxHistory + 10
	for i := range n {
		tr := Transition{At: at(time.Duration(i) * time.Minute), Up: i%2 == 1}
		if !s.Apply(tr) {
			t.Fatalf("Apply(#%d) = false", i)
		}
	}
	if got := len(s.Transitions); got != MaxHistory {
		t.Fatalf("len = %d, want %d", got, MaxHistory)
	}
	if got, want := s.Transitions[0].At, at(10*time.Minute); !got.Equal(want) {
		t.Errorf("oldest kept = %v, want %v", got, want)
	}
	if got, want := s.Transitions[MaxHistory-1].At, at(time.Duration(n-1)*time.Minute); !got.Equal(want) {
		t.Errorf("newest kept = %v, want %v", got, want)
	}
	before := append([]Transition(nil), s.Transitions...)

	t.Run("older than all kept is ignored", func(t *testing.T) {
		if s.Apply(down(-time.Hour)) {
			t.Error("Apply of a transition older than the history = true, want false")
		}
		if !reflect.DeepEqual(s.Transitions, before) {
			t.Error("history changed")
		}
	})
	t.Run("newer drops the oldest", func(t *testing.T) {
		if !s.Apply(down(time.Duration(n) * time.Minute)) {
			t.Fatal("Apply of a newer transition = false")
		}
		if got := len(s.Transitions); got != MaxHistory {
			t.Fatalf("len = %d, want %d", got, MaxHistory)
		}
		if got, want := s.Transitions[0].At, at(11*time.Minute); !got.Equal(want) {
			t.Errorf("oldest kept = %v, want %v", got, want)
		}
		if s.Up() {
			t.Error("Up() = true after the newest down")
		}
		if got, want := s.DownSince(), at(time.Duration(n)*time.Minute); !got.Equal(want) {
			t.Errorf("DownSince = %v, want %v", got, want)
		}
	})
	t.Run("order does not matter", func(t *testing.T) {
		// Applying the same transitions newest first keeps the same newest window.
		r := &Service{}
		for i := n; i >= 0; i-- {
			r.Apply(Transition{At: at(time.Duration(i) * time.Minute), Up: i%2 == 1 && i != n})
		}
		if !reflect.DeepEqual(r.Transitions, s.Transitions) {
			t.Errorf("reverse order kept %v..%v, want %v..%v",
				r.Transitions[0].At, r.Transitions[len(r.Transitions)-1].At, s.Transitions[0].At, s.Transitions[len(s.Transitions)-1].At)
		}
	})
}

func TestReadyAt(t *testing.T) {
	const settle = 5 * time.Minute
	tests := []struct {
		name    string
		history []Transition
		want    time.Time
		ok      bool
	}{
		{"down", []Transition{down(0)}, time.Time{}, false},
		{"restored", []Transition{down(0), up(48 * time.Hour)}, at(48*time.Hour + settle), true},
		{"flap restarts settle", []Transition{down(0), up(48 * time.Hour), down(48*time.Hour + 2*time.Minute), up(48*time.Hour + 3*time.Minute)}, at(48*time.Hour + 3*time.Minute + settle), true},
		{"repeated up keeps first", []Transition{down(0), up(time.Hour), up(2 * time.Hour)}, at(time.Hour + settle), true},
		{"flap ends down", []Transition{down(0), up(time.Hour), down(time.Hour + time.Minute)}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := build(tt.history...).ReadyAt(settle)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("ReadyAt = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLastOutage(t *testing.T) {
	tests := []struct {
		name    string
		history []Transition
		want    events.Outage
		ok      bool
	}{
		{"none", []Transition{up(0)}, events.Outage{}, false},
		{"ongoing", []Transition{down(0), up(time.Hour), down(2 * time.Hour)}, events.Outage{From: at(2 * time.Hour)}, true},
		{"ended", []Transition{down(0), up(time.Hour), down(2 * time.Hour), up(3 * time.Hour)}, events.Outage{From: at(2 * time.Hour), To: at(3 * time.Hour)}, true},
		{"downs merged", []Transition{down(0), down(30 * time.Minute), up(time.Hour)}, events.Outage{From: at(0), To: at(time.Hour)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := build(tt.history...).LastOutage()
			if ok != tt.ok || !got.From.Equal(tt.want.From) || !got.To.Equal(tt.want.To) {
				t.Errorf("LastOutage = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestNotice(t *testing.T) {
	t0 := time.Date(2021, 5, 3, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tr   []Transition
		want string
	}{
		{"never down", nil, ""},
		{"down without notice", []Transition{{At: t0}}, ""},
		{"down notice", []Transition{{At: t0, Notice: "guasto"}}, "guasto"},
		{"up notice wins", []Transition{{At: t0, Notice: "guasto"}, {At: t0.Add(time.Hour), Up: true, Notice: "ripristinato"}}, "ripristinato"},
		{"up without notice keeps the down's", []Transition{{At: t0, Notice: "guasto"}, {At: t0.Add(time.Hour), Up: true}}, "guasto"},
		{"an older outage's notice is not repeated", []Transition{
			{At: t0, Notice: "vecchio"}, {At: t0.Add(time.Hour), Up: true},
			{At: t0.Add(48 * time.Hour)}, {At: t0.Add(49 * time.Hour), Up: true},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{Name: "payments"}
			for _, tr := range tc.tr {
				s.Apply(tr)
			}
			if got := s.Notice(); got != tc.want {
				t.Errorf("Notice() = %q, want %q", got, tc.want)
			}
		})
	}
}
