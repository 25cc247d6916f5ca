// Package reliability holds promemoria's proof of reliability: tests that
// run the real promemoria binary against real nats-server processes and try
// hard to break the promise that no gap is forgotten and no reminder is sent
// twice. They kill the worker with SIGKILL at random points, stop and kill
// the broker, run three replicas and a three-node cluster, feed hostile
// input and move the clock.
//
// The package has no non-test code. Run it with
//
//	go test -race ./reliability/ -v
//
// and a long run of the crash and broker tests with
//
//	PROMEMORIA_SOAK=10m go test -run 'Crash|Broker' ./reliability/ -v -timeout 0
//
// docs/guarantees.md says what the tests prove and what they do not.
package reliability
