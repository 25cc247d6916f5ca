// Command genexample writes promemoria.example.yaml from the settings
// table: go generate ./config.
package main

import (
	"fmt"
	"os"

	"github.com/promemoria/promemoria/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genexample FILE")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[1], config.Example(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genexample:", err)
		os.Exit(1)
	}
}
