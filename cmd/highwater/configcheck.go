package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/highwater-dev/highwater/config"
)

func newConfigCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration",
		Args:  subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return usagef(cmd, "config: want the subcommand check")
		},
	}
	l := config.NewLoader("config check", getenv)
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration as run would, and print it with secrets redacted",
		Long: `Loads the configuration exactly as run does (defaults < --config file <
HIGHWATER_* env < flags, password files read), validates it as run does short
of connecting (the sink URL included), and prints the effective configuration
as YAML with secrets redacted. An invalid configuration exits 1 with every
problem listed.`,
		Example: `  highwater config check --config highwater.yaml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return configCheck(l, stdout, stderr)
		},
	}
	check.Flags().SortFlags = false
	check.Flags().AddFlagSet(l.FlagSet())
	cmd.AddCommand(check)
	return cmd
}

func configCheck(l *config.Loader, stdout, stderr io.Writer) error {
	cfg, err := l.Load()
	if cfg.Sink != "" {
		// As run would find it, short of connecting.
		err = errors.Join(err, checkSink(cfg.Sink))
	}
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
