//go:build !soak

package reliability

// soakDefault is the soak duration when PROMEMORIA_SOAK is not set: none.
const soakDefault = 0
