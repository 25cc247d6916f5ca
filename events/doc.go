// Package events is promemoria's event contract: the CloudEvents 1.0 envelopes
// it consumes from and publishes to NATS JetStream, their subjects, and the
// validation every input passes before it can change state.
//
// The contract is documented for humans in README.md beside this file; the
// types here are its source of truth and the tests keep the two in step.
package events
