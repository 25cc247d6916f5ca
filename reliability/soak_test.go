package reliability

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// soakEnv names the environment variable that turns the crash and broker
// tests into a soak: PROMEMORIA_SOAK=10m loops them, with larger sizes,
// for ten minutes. Building with -tags soak sets a default of 10m.
const soakEnv = "PROMEMORIA_SOAK"

// soakDuration returns how long the crash and broker tests should loop
// (0: one short round, the default of go test ./...).
func soakDuration(t testing.TB) time.Duration {
	v := os.Getenv(soakEnv)
	if v == "" {
		return soakDefault
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration like 10m", soakEnv, v)
	}
	return d
}

// rounds runs round(i) once, or, in a soak, again and again until the
// soak's duration has passed; a failing round does not stop the soak, so
// that its end tells how often each invariant broke.
func rounds(t *testing.T, round func(t *testing.T, i int, soak bool)) {
	d := soakDuration(t)
	if d == 0 {
		round(t, 0, false)
		return
	}
	start := time.Now()
	failed := 0
	i := 0
	for ; time.Since(start) < d; i++ {
		if !t.Run(fmt.Sprintf("round-%d", i), func(t *testing.T) { round(t, i, true) }) {
			failed++
		}
	}
	t.Logf("soak: %d rounds in %s, %d failed", i, time.Since(start).Round(time.Second), failed)
}
