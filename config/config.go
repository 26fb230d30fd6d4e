// Package config holds highwater run's configuration and loads it from, in
// rising precedence, defaults, a YAML file, HIGHWATER_* environment
// variables and command-line flags. Every field has all three spellings:
// YAML `buffer_dir`, env HIGHWATER_BUFFER_DIR, flag --buffer-dir.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/highwater-dev/highwater/schemas"
)

// Config is the configuration of `highwater run`.
type Config struct {
	// Brokers are the Kafka seed brokers (host:port).
	Brokers []string `yaml:"brokers"`
	// Registry is the Schema Registry URL the changefeed registers with.
	Registry string `yaml:"registry"`
	// RegistryUser and RegistryPassword are the registry's basic-auth
	// credentials, if it wants them.
	RegistryUser     string `yaml:"registry_user"`
	RegistryPassword string `yaml:"registry_password"`
	// Topics are the changefeed's topics; together they are one feed with
	// one frontier.
	Topics []string `yaml:"topics"`
	// Group is the Kafka consumer group, which also names the feed's
	// checkpoints in the warehouse. Default "highwater".
	Group string `yaml:"group"`
	// Sink is the warehouse URL: duckdb:///abs/path.duckdb or
	// postgres://user:pass@host:port/db?sslmode=disable.
	Sink string `yaml:"sink"`
	// BufferDir is where the Badger buffer lives. Default ./highwater-buffer.
	BufferDir string `yaml:"buffer_dir"`
	// BufferBudget is the buffer's disk budget in bytes (suffixes KiB, MiB,
	// GiB accepted); when reached, fetching pauses until a window flushes.
	// Default 8GiB; 0 means unlimited.
	BufferBudget string `yaml:"buffer_budget"`
	// Changelog adds <table>_changes tables holding every version.
	Changelog bool `yaml:"changelog"`
	// StopAt makes run exit 0 once every partition of every feed topic is
	// applied through a resolved timestamp >= this HLC.
	StopAt string `yaml:"stop_at"`
	// SessionTimeout is how quickly a dead member's partitions move. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout must exceed the longest flush. Default 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// StartupTimeout bounds the wait for brokers and topics at start. Default 30s.
	StartupTimeout time.Duration `yaml:"startup_timeout"`
	// MetricsAddr serves Prometheus /metrics, /healthz and /readyz when set
	// (e.g. ":9464").
	MetricsAddr string `yaml:"metrics_addr"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json or console; default console on a terminal, json otherwise.
	LogFormat string `yaml:"log_format"`
}

// field describes one setting's three spellings.
type field struct {
	flag, usage string
	ptr         any
}

func (c *Config) fields() []field {
	return []field{
		{"brokers", "Kafka seed brokers, comma separated", &c.Brokers},
		{"registry", "Schema Registry URL", &c.Registry},
		{"registry-user", "Schema Registry basic-auth user", &c.RegistryUser},
		{"registry-password", "Schema Registry basic-auth password", &c.RegistryPassword},
		{"topics", "changefeed topics (one feed), comma separated", &c.Topics},
		{"group", "Kafka consumer group; also names the warehouse checkpoints", &c.Group},
		{"sink", "warehouse URL: duckdb:///abs/path.duckdb | postgres://user:pass@host/db", &c.Sink},
		{"buffer-dir", "directory of the Badger event buffer", &c.BufferDir},
		{"buffer-budget", "buffer disk budget (e.g. 8GiB); fetching pauses when reached; 0 = unlimited", &c.BufferBudget},
		{"changelog", "also write <table>_changes with every version", &c.Changelog},
		{"stop-at", "exit 0 once every partition is applied through this HLC (WALLNANOS.LOGICAL)", &c.StopAt},
		{"session-timeout", "consumer-group session timeout (how fast a dead member's partitions move)", &c.SessionTimeout},
		{"rebalance-timeout", "consumer-group rebalance timeout (must exceed the longest flush)", &c.RebalanceTimeout},
		{"startup-timeout", "how long to wait for brokers and topics at start", &c.StartupTimeout},
		{"metrics-addr", "serve Prometheus /metrics, /healthz, /readyz on this address (e.g. :9464)", &c.MetricsAddr},
		{"log-level", "debug, info, warn or error", &c.LogLevel},
		{"log-format", "json or console (default: console on a terminal)", &c.LogFormat},
	}
}

// Defaults returns the configuration before any file, env or flag.
func Defaults() Config {
	return Config{
		Group:            "highwater",
		BufferDir:        "highwater-buffer",
		BufferBudget:     "8GiB",
		SessionTimeout:   10 * time.Second,
		RebalanceTimeout: 30 * time.Second,
		StartupTimeout:   30 * time.Second,
		LogLevel:         "info",
	}
}

// EnvName is the environment variable of a flag name: buffer-dir ->
// HIGHWATER_BUFFER_DIR.
func EnvName(flagName string) string {
	return "HIGHWATER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load parses args (flags of `highwater run`, including --config FILE) on
// top of the YAML file and env, and validates the result. getenv is usually
// os.Getenv.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	configFile := fs.String("config", getenv("HIGHWATER_CONFIG"), "YAML configuration file (env HIGHWATER_CONFIG)")
	// Flags are parsed into a scratch Config so that only flags actually
	// given override the file and env.
	var fromFlags Config
	for _, f := range fromFlags.fields() {
		f.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *configFile != "" {
		if err := c.loadFile(*configFile); err != nil {
			return Config{}, err
		}
	}
	for _, f := range c.fields() {
		if v := getenv(EnvName(f.flag)); v != "" {
			if err := f.set(v); err != nil {
				return Config{}, fmt.Errorf("env %s: %w", EnvName(f.flag), err)
			}
		}
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	mine, theirs := c.fields(), fromFlags.fields()
	for i := range mine {
		if given[mine[i].flag] {
			copyValue(mine[i].ptr, theirs[i].ptr)
		}
	}
	return c, c.Validate()
}

// Usage returns the flag reference of `highwater run`.
func Usage() string {
	var c Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.String("config", "", "YAML configuration file (env HIGHWATER_CONFIG)")
	for _, f := range c.fields() {
		f.register(fs)
	}
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file is an empty configuration, not an error.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func (f field) register(fs *flag.FlagSet) {
	switch p := f.ptr.(type) {
	case *string:
		fs.StringVar(p, f.flag, *p, f.usage)
	case *bool:
		fs.BoolVar(p, f.flag, *p, f.usage)
	case *time.Duration:
		fs.DurationVar(p, f.flag, *p, f.usage)
	case *[]string:
		fs.Func(f.flag, f.usage, func(s string) error { *p = splitList(s); return nil })
	}
}

func (f field) set(v string) error {
	switch p := f.ptr.(type) {
	case *string:
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	case *[]string:
		*p = splitList(v)
	}
	return nil
}

func copyValue(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *bool:
		*d = *src.(*bool)
	case *time.Duration:
		*d = *src.(*time.Duration)
	case *[]string:
		*d = *src.(*[]string)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks that the configuration can run, with messages that say
// what to fix.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers: set --brokers (env HIGHWATER_BROKERS)"))
	}
	if c.Registry == "" {
		errs = append(errs, errors.New("no Schema Registry: set --registry (env HIGHWATER_REGISTRY)"))
	} else if u, err := url.Parse(c.Registry); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		errs = append(errs, fmt.Errorf("registry %q: want an http:// or https:// URL", c.Registry))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("no topics: set --topics to the changefeed's topics (env HIGHWATER_TOPICS)"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("empty --group"))
	}
	if c.Sink == "" {
		errs = append(errs, errors.New("no warehouse: set --sink, e.g. duckdb:///var/lib/highwater/warehouse.duckdb"))
	} else if _, err := url.Parse(c.Sink); err != nil {
		errs = append(errs, fmt.Errorf("sink: %w", err))
	}
	if _, err := c.Budget(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.StopAtHLC(); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "", "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log format %q: want json or console", c.LogFormat))
	}
	return errors.Join(errs...)
}

// StopAtHLC parses StopAt; the zero HLC means "run forever".
func (c *Config) StopAtHLC() (schemas.HLC, error) {
	if c.StopAt == "" {
		return schemas.HLC{}, nil
	}
	h, err := schemas.ParseHLC(c.StopAt)
	if err != nil {
		return h, fmt.Errorf("stop-at: %w", err)
	}
	return h, nil
}

// Budget parses BufferBudget into bytes.
func (c *Config) Budget() (int64, error) {
	return ParseBytes(c.BufferBudget)
}

// ParseBytes parses sizes such as 512MiB, 8GiB, 1.5GB or 1048576.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := map[string]float64{
		"": 1, "b": 1, "k": 1 << 10, "kb": 1e3, "kib": 1 << 10, "m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1e9, "gib": 1 << 30, "t": 1 << 40, "tb": 1e12, "tib": 1 << 40,
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	n, err := strconv.ParseFloat(num, 64)
	mult, ok := units[unit]
	if err != nil || !ok || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	return int64(n * mult), nil
}

// Redacted returns c as YAML with secrets replaced, for logs and
// `config check`.
func (c Config) Redacted() string {
	if c.RegistryPassword != "" {
		c.RegistryPassword = "REDACTED"
	}
	c.Registry = RedactURL(c.Registry)
	c.Sink = RedactURL(c.Sink)
	out, _ := yaml.Marshal(c)
	return string(out)
}

// RedactURL returns raw with its password, and query parameters that look
// like secrets, replaced by REDACTED: safe for logs and error messages.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		// It may still hold a password: show none of it.
		return "<unparsable URL>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "secret") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
