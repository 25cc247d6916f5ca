package events

import "time"

// The output types of the delivery stage: the audit trail of what reached
// (or failed to reach) a person or a platform.
const (
	TypeDeliverySent   Type = "delivery.sent"
	TypeDeliveryFailed Type = "delivery.failed"
)

// Receiver names a way of delivering reminders and advices.
type Receiver string

// The receivers of the delivery stage.
const (
	// ReceiverEmail is SMTP: e-mail or PEC (certified e-mail).
	ReceiverEmail Receiver = "email"
	// ReceiverWebhook is an HTTP POST of the CloudEvent.
	ReceiverWebhook Receiver = "webhook"
)

// FailReason says why a delivery failed.
type FailReason string

// The reasons of delivery.failed.
const (
	// FailRejected is a permanent refusal by the receiver: an SMTP 5xx
	// reply, an HTTP 4xx other than 429, a redirect.
	FailRejected FailReason = "rejected"
	// FailExhausted is a temporary failure that lasted for every attempt
	// (setting delivery_max_attempts).
	FailExhausted FailReason = "retries_exhausted"
	// FailUndecodable is an output message that is not a reminder or an
	// advice the stage can read: it was acknowledged and skipped.
	FailUndecodable FailReason = "undecodable"
)

// Delivery is the data of delivery.sent and delivery.failed: one e-mail
// (possibly a digest of several reminders and advices) or one webhook call.
type Delivery struct {
	// DeliveryID is deterministic (outcome, receiver, the ids carried and
	// the address) and is also the CloudEvents id.
	DeliveryID string `json:"delivery_id"`
	// Receiver is email or webhook; absent for an undecodable message.
	Receiver Receiver `json:"receiver,omitempty"`
	// ReminderIDs lists the reminder_id and advice_id of every reminder and
	// advice delivered together, sorted.
	ReminderIDs []string `json:"reminder_ids"`
	// TenderIDs lists the tenders concerned, sorted.
	TenderIDs []string `json:"tender_ids,omitempty"`
	// Address is the e-mail address of the recipient, or the webhook URL
	// without its query string and credentials.
	Address string `json:"address,omitempty"`
	// CC lists the addresses in copy.
	CC []string `json:"cc,omitempty"`
	// MessageID is the e-mail's Message-ID, without angle brackets.
	MessageID string `json:"message_id,omitempty"`
	// HTTPStatus is the webhook's last HTTP status, if it answered.
	HTTPStatus int `json:"http_status,omitempty"`
	// Attempts counts the tries, the last one included.
	Attempts int `json:"attempts"`
	// Reason and Error say why a delivery failed.
	Reason FailReason `json:"reason,omitempty"`
	Error  string     `json:"error,omitempty"`
	// Stream and Sequence locate an undecodable message on the output
	// stream.
	Stream   string `json:"stream,omitempty"`
	Sequence uint64 `json:"stream_sequence,omitempty"`
	// At is when the receiver accepted the message, or when the stage gave
	// up.
	At time.Time `json:"at"`
}
