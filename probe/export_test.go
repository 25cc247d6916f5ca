package probe

// Fast returns o with the rules of the schedule lifted (MinInterval, a
// timeout at most the interval), so that the Runner's tests probe every
// few milliseconds. Being in a _test.go file, it exists in test binaries
// only: a program cannot lift the rules.
func Fast(o Options) Options {
	o.fast = true
	return o
}
