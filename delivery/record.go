package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
)

// Source is the CloudEvents source of the delivery events, the same as
// every output of promemoria.
const Source = "promemoria"

// record is what the bucket keeps of a delivery, under one key per
// receiver and reminder id: the event that reported it, published again
// (same id, dropped by the output stream) if the reminder comes back.
type record struct {
	Type     events.Type     `json:"type"`
	Delivery events.Delivery `json:"delivery"`
}

var lower32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// digest returns the first 15 bytes of the SHA-256 of parts (each followed
// by a 0 byte), in lower-case base32: 24 characters.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strings.ToLower(lower32.EncodeToString(h.Sum(nil)[:15]))
}

// deliveryID is the id of the delivery event: the outcome, the receiver,
// the address and the reminder ids carried.
func deliveryID(typ events.Type, r events.Receiver, address string, ids []string) string {
	return "dlv-" + digest(append([]string{string(typ), string(r), strings.ToLower(address)}, ids...)...)
}

// messageID is the Message-ID (without angle brackets) of the e-mail that
// carries ids to address: the same e-mail always has the same one.
func messageID(address, domain string, ids []string) string {
	return "promemoria." + digest(append([]string{"email", strings.ToLower(address)}, ids...)...) + "@" + domain
}

var keySafe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// recordKey is the bucket's key of id for receiver r: the id itself when
// it is a valid key token (every id promemoria writes is), else a digest.
func recordKey(r events.Receiver, id string) string {
	if keySafe.MatchString(id) {
		return string(r) + "." + id
	}
	return string(r) + ".h-" + digest(id)
}

// lookup returns the record of id for r, or nil.
func (s *Stage) lookup(ctx context.Context, r events.Receiver, id string) (*record, error) {
	e, err := s.kv.Get(ctx, recordKey(r, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery record: %w", err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, nil // unreadable: deliver again rather than never
	}
	return &rec, nil
}

// store records the delivery of each id.
func (s *Stage) store(ctx context.Context, r events.Receiver, ids []string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := s.kv.Put(ctx, recordKey(r, id), b); err != nil {
			return fmt.Errorf("write delivery record: %w", err)
		}
	}
	return nil
}

// publish publishes a delivery event on the output stream and waits for
// the ack; its id is the delivery id, so a repeat is dropped.
func (s *Stage) publish(ctx context.Context, typ events.Type, d events.Delivery) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	body, err := json.Marshal(events.Envelope{
		SpecVersion: events.SpecVersion, ID: d.DeliveryID, Source: Source, Type: typ,
		Time: d.At.UTC(), DataContentType: events.ContentType, Data: raw,
	})
	if err != nil {
		return err
	}
	msg := nats.NewMsg(s.opts.Subjects.Of(typ))
	msg.Data = body
	msg.Header.Set(events.HeaderMsgID, d.DeliveryID)
	msg.Header.Set("Ce-Type", string(typ))
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}

// persist runs fn until it succeeds or ctx ends, waiting a little longer
// after each failure: the bucket and the stream are the stage's own
// memory, and a failure there is NATS being away for a while.
func (s *Stage) persist(ctx context.Context, what string, fn func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		s.log.Warn().Err(err).Msg(what + " failed; retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// sortedIDs returns the items' ids, sorted.
func sortedIDs(items []*item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
	}
	slices.Sort(ids)
	return ids
}

// tenderIDs returns the items' tenders, sorted, once each.
func tenderIDs(items []*item) []string {
	var ts []string
	for _, it := range items {
		if it.tender != "" {
			ts = append(ts, it.tender)
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}
