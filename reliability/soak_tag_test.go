//go:build soak

package reliability

import "time"

// soakDefault is the soak duration of a build with -tags soak when
// PROMEMORIA_SOAK is not set.
const soakDefault = 10 * time.Minute
