package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// Check compares the outputs stored with those expected.
type Check struct {
	// Expected and Got count outputs; Missing, Unexpected and Duplicated
	// count the differences.
	Expected, Got                   int
	Missing, Unexpected, Duplicated int
	// Problems describes the first differences.
	Problems []string
}

// OK reports whether every expected output was stored exactly once and
// nothing else was.
func (c Check) OK() bool {
	return c.Missing == 0 && c.Unexpected == 0 && c.Duplicated == 0 && len(c.Problems) == 0
}

func (c Check) String() string {
	s := fmt.Sprintf("expected %d, stored %d, missing %d, unexpected %d, duplicated %d", c.Expected, c.Got, c.Missing, c.Unexpected, c.Duplicated)
	if len(c.Problems) > 0 {
		s += ": " + strings.Join(c.Problems, "; ")
	}
	return s
}

func (c *Check) problem(format string, args ...any) {
	if len(c.Problems) < 10 {
		c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	}
}

// parsed is an output message as the checks see it.
type parsed struct {
	Output
	seq        int
	escalation bool
	id         string
}

func parseOutput(data []byte) (parsed, bool) {
	var env struct {
		ID   string          `json:"id"`
		Type events.Type     `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(data, &env) != nil {
		return parsed{}, false
	}
	var d struct {
		TenderID   string `json:"tender_id"`
		LotID      string `json:"lot_id"`
		Op         string `json:"operator_fiscal_code"`
		Sequence   int    `json:"sequence"`
		Escalation bool   `json:"escalation"`
	}
	if json.Unmarshal(env.Data, &d) != nil {
		return parsed{}, false
	}
	return parsed{
		Output: Output{Type: env.Type, TenderID: d.TenderID, LotID: d.LotID, OperatorFiscalCode: d.Op},
		seq:    d.Sequence, escalation: d.Escalation, id: env.ID,
	}, true
}

// CheckOutputs reads promemoria's whole output stream and compares it with
// expect (Output.Key → how many times; always 1 in practice): every
// message must be an expected first reminder (sequence 1), resolution or advice,
// each once, with a distinct id.
func CheckOutputs(ctx context.Context, js jetstream.JetStream, expect map[string]int) (Check, error) {
	var c Check
	for _, n := range expect {
		c.Expected += n
	}
	got := map[string]int{}
	ids := map[string]bool{}
	err := readStream(ctx, js, worker.StreamOutput, func(m jetstream.Msg) {
		c.Got++
		p, ok := parseOutput(m.Data())
		if !ok {
			c.Unexpected++
			c.problem("%s: not a CloudEvent", m.Subject())
			return
		}
		if ids[p.id] {
			c.Duplicated++
			c.problem("id %s stored twice", p.id)
		}
		ids[p.id] = true
		if p.Type != events.TypeReminderResolved && p.Type != events.TypeAdviceExtension && (p.seq != 1 || p.escalation) {
			c.Unexpected++
			c.problem("%s sequence %d escalation %v", p.Key(), p.seq, p.escalation)
			return
		}
		got[p.Key()]++
	})
	if err != nil {
		return c, err
	}
	for k, n := range got {
		w := expect[k]
		switch {
		case w == 0:
			c.Unexpected += n
			c.problem("unexpected %s", k)
		case n > w:
			c.Duplicated += n - w
			c.problem("%s stored %d times", k, n)
		case n < w:
			c.Missing += w - n
		}
	}
	for k, w := range expect {
		if got[k] == 0 {
			c.Missing += w
			c.problem("missing %s", k)
		}
	}
	return c, nil
}

// readStream delivers every message stored in stream now, in order.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, fn func(jetstream.Msg)) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("reading %s: %w", stream, err)
		}
		fn(m)
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream >= last {
			return nil
		}
	}
}

// watchOutputs calls fn with every message stored on promemoria's output
// stream from now on, and the time it arrived.
func watchOutputs(ctx context.Context, js jetstream.JetStream, fn func(jetstream.Msg, time.Time)) (stop func(), err error) {
	cons, err := js.OrderedConsumer(ctx, worker.StreamOutput, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { fn(m, time.Now()) })
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}
