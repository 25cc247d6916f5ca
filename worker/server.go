package worker

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// MinServerVersion is the oldest nats-server the worker runs on: it needs
// JetStream message schedules (2.12) for its timers and batched direct
// gets (2.11) to read the records of a batch in one request.
const MinServerVersion = "2.12.0"

// checkServer refuses a server older than MinServerVersion, saying what
// is missing.
func checkServer(nc *nats.Conn) error {
	v := nc.ConnectedServerVersion()
	if v == "" {
		return nil // not connected yet: provisioning says what fails
	}
	if !atLeast(v, MinServerVersion) {
		return fmt.Errorf("nats-server %s at %s is too old: promemoria needs %s or later "+
			"(JetStream message schedules, 2.12, for its timers; batched direct gets, 2.11, for its reads); upgrade the server",
			v, nc.ConnectedUrlRedacted(), MinServerVersion)
	}
	return nil
}

// atLeast reports whether version v (like "2.12.1" or "2.14.0-beta") is
// want or later.
func atLeast(v, want string) bool {
	parse := func(s string) [3]int {
		var out [3]int
		s, _, _ = strings.Cut(s, "-")
		for i, p := range strings.SplitN(s, ".", 3) {
			out[i], _ = strconv.Atoi(p)
		}
		return out
	}
	a, b := parse(v), parse(want)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}
