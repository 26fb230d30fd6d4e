package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/highwater-dev/highwater/config"
)

const configUsage = `Usage: highwater config check [--config FILE] [run flags]

Loads the configuration exactly as run does (defaults < --config file <
HIGHWATER_* env < flags, password files read), validates it, and prints the
effective configuration as YAML with secrets redacted. An invalid
configuration exits 1 with every problem listed.
`

func configCmd(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, configUsage)
		if len(args) > 0 && isHelp(args[0]) {
			return flag.ErrHelp
		}
		return fmt.Errorf("config: want the subcommand check: %w", errUsage)
	}
	l := config.NewLoader("config check", getenv)
	if err := l.FlagSet().Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "%s\nFlags (each also a YAML field and a HIGHWATER_* env var):\n%s", configUsage, config.Usage())
			return err
		}
		return fmt.Errorf("config check: %w", err)
	}
	if l.FlagSet().NArg() > 0 {
		return fmt.Errorf("config check: unexpected arguments %q", l.FlagSet().Args())
	}
	cfg, err := l.Load()
	if err != nil {
		problems := flatten(err)
		fmt.Fprintf(stderr, "configuration is invalid:\n")
		for _, p := range problems {
			fmt.Fprintf(stderr, "  - %v\n", p)
		}
		if len(problems) == 1 {
			return errors.New("config check: 1 problem")
		}
		return fmt.Errorf("config check: %d problems", len(problems))
	}
	fmt.Fprintf(stdout, "# highwater effective configuration (secrets redacted)\n%s", cfg.Redacted())
	return nil
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// flatten lists the leaves of errors.Join trees, so that each problem is
// one line.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
