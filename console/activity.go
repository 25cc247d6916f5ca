package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/worker"
)

// activitySize is how many messages the Activity page lists; activityScan
// bounds the sequences it reads to find them when a class is rare.
const (
	activitySize = 50
	activityScan = 20_000
)

// classes are the Activity page's filter values.
var classes = []string{"reminder", "advice", "resolved", "deadletter", "delivery"}

// activityData is the Activity page.
type activityData struct {
	Class   string
	Classes []string
	Outputs []*output
	Window  window
	Before  uint64
}

func (c *Console) activity(w http.ResponseWriter, r *http.Request) {
	l, _ := negotiate(r)
	q := r.URL.Query()
	d := activityData{Class: q.Get("class"), Classes: classes}
	if d.Class != "" && !slices.Contains(classes, d.Class) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("class %q: want one of %v", d.Class, classes))
		return
	}
	if v := q.Get("before"); v != "" {
		var err error
		if d.Before, err = strconv.ParseUint(v, 10, 64); err != nil {
			c.fail(w, r, http.StatusBadRequest, errors.New("before: want a message number"))
			return
		}
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	outs, win, err := c.r.latest(ctx, c.o.Subjects, classSubject(c.o.Subjects, d.Class), d.Before, activitySize, activityScan, nil)
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("activity: %w", err))
		return
	}
	d.Outputs, d.Window = outs, win
	c.render(w, r, http.StatusOK, "activity", "activity", text(l, "activity.title"), d.Before == 0, d)
}

// messageData is the page of one output message.
type messageData struct {
	O *output
	// Pretty is the whole event, indented.
	Pretty string
	// Original is a dead letter's original bytes as text, when they are
	// UTF-8; Binary is true when they are not.
	Original string
	Binary   bool
}

// getOutput reads output message seq.
func (c *Console) getOutput(w http.ResponseWriter, r *http.Request) (*jetstream.RawStreamMsg, bool) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(w, r, http.StatusNotFound, errors.New("no such message"))
		return nil, false
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	st, err := c.o.JS.Stream(ctx, worker.StreamOutput)
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("stream %s: %w", worker.StreamOutput, err))
		return nil, false
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		c.fail(w, r, http.StatusNotFound, err)
		return nil, false
	}
	if err != nil {
		c.fail(w, r, errStatus(err), fmt.Errorf("message %d: %w", seq, err))
		return nil, false
	}
	return m, true
}

func (c *Console) message(w http.ResponseWriter, r *http.Request) {
	l, _ := negotiate(r)
	m, ok := c.getOutput(w, r)
	if !ok {
		return
	}
	d := messageData{O: decodeOutput(c.o.Subjects, m)}
	var pretty bytes.Buffer
	if json.Indent(&pretty, m.Data, "", "  ") == nil {
		d.Pretty = pretty.String()
	} else {
		d.Pretty = string(bytes.ToValidUTF8(m.Data, []byte("\uFFFD")))
	}
	if dl := d.O.DeadLetter; dl != nil {
		if utf8.Valid(dl.Data) {
			d.Original = string(dl.Data)
		} else {
			d.Binary = true
		}
	}
	c.render(w, r, http.StatusOK, "message", "activity", textf(l, "message.title", m.Sequence), false, d)
}

// messageData answers a dead letter's original bytes, as they arrived, for
// download.
func (c *Console) messageData(w http.ResponseWriter, r *http.Request) {
	m, ok := c.getOutput(w, r)
	if !ok {
		return
	}
	o := decodeOutput(c.o.Subjects, m)
	if o.DeadLetter == nil {
		c.fail(w, r, http.StatusNotFound, errors.New("not a dead letter"))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="deadletter-%d.bin"`, m.Sequence))
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(o.DeadLetter.Data)
}
