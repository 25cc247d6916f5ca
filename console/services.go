package console

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/promemoria/promemoria/outage"
)

// timelineDays is the span of the services' timelines.
const timelineDays = 90

// timelineWidth is the width of a timeline's SVG coordinates.
const timelineWidth = 1000.0

// serviceRow is one service on the Services page.
type serviceRow struct {
	ID       string
	Up       bool
	Reported bool
	// Since is when the current state began: the outage's start, or the
	// end of the last outage; zero if the service was never reported down.
	Since time.Time
	// ReadyAt is when its gaps may be reminded (up since + settle);
	// Settling tells whether that is still ahead.
	ReadyAt  time.Time
	Settling bool
	Timeline timeline
	OpenGaps int
}

// timeline is a service's outages of the last timelineDays days, drawn as
// bars on an axis timelineWidth wide.
type timeline struct {
	Bars  []bar
	Grid  []float64
	Count int
	Total time.Duration
}

// bar is one outage on a timeline: its start and width in SVG units.
type bar struct {
	X, W     float64
	From, To time.Time
	Ongoing  bool
}

// drawTimeline places svc's outages that overlap the timelineDays days up
// to now; an outage too short to see is drawn two units wide.
func drawTimeline(svc *outage.Service, now time.Time) timeline {
	start := now.Add(-timelineDays * 24 * time.Hour)
	span := now.Sub(start).Seconds()
	var tl timeline
	for d := 30; d < timelineDays; d += 30 {
		tl.Grid = append(tl.Grid, float64(d)/timelineDays*timelineWidth)
	}
	if svc == nil {
		return tl
	}
	for _, o := range svc.Outages() {
		to, ongoing := o.To, o.To.IsZero()
		if ongoing || to.After(now) {
			to = now
		}
		if !to.After(start) || o.From.After(now) {
			continue
		}
		from := o.From
		if from.Before(start) {
			from = start
		}
		x := from.Sub(start).Seconds() / span * timelineWidth
		w := max(to.Sub(from).Seconds()/span*timelineWidth, 2)
		if x+w > timelineWidth {
			x = timelineWidth - w
		}
		tl.Bars = append(tl.Bars, bar{X: round1(x), W: round1(w), From: o.From, To: o.To, Ongoing: ongoing})
		tl.Count++
		tl.Total += to.Sub(from)
	}
	return tl
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// servicesData is the Services page.
type servicesData struct {
	Rows     []serviceRow
	Down     int
	Counted  bool
	CountAt  time.Time
	Settle   time.Duration
	AxisFrom time.Time
}

func (c *Console) services(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	l, _ := negotiate(r)
	svcs, err := c.r.services(ctx)
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("services: %w", err))
		return
	}
	counts, at, counted := c.r.counts.get(2*time.Second, c.r.countOpen)
	now := c.o.Now()
	names := map[string]bool{}
	for _, n := range c.o.Services {
		names[n] = true
	}
	for n := range svcs {
		names[n] = true
	}
	for n := range counts {
		names[n] = true
	}
	d := servicesData{Counted: counted, CountAt: at, Settle: c.o.Settle, AxisFrom: now.Add(-timelineDays * 24 * time.Hour)}
	for n := range names {
		svc, reported := svcs[n]
		if svc == nil {
			svc = &outage.Service{Name: n}
		}
		row := serviceRow{ID: n, Up: svc.Up(), Reported: reported && len(svc.Transitions) > 0, Timeline: drawTimeline(svc, now), OpenGaps: counts[n]}
		if row.Up {
			row.Since = svc.UpSince()
			if ready, ok := svc.ReadyAt(c.o.Settle); ok && !row.Since.IsZero() {
				row.ReadyAt, row.Settling = ready, now.Before(ready)
			}
		} else {
			row.Since = svc.DownSince()
			d.Down++
		}
		d.Rows = append(d.Rows, row)
	}
	slices.SortFunc(d.Rows, func(a, b serviceRow) int {
		if a.Up != b.Up {
			if a.Up {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	c.render(w, r, http.StatusOK, "services", "services", text(l, "services.title"), true, d)
}
