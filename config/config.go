// Package config holds highwater run's configuration and loads it from, in
// rising precedence, defaults, a YAML file, HIGHWATER_* environment
// variables and command-line flags. Every field has all three spellings:
// YAML `buffer_dir`, env HIGHWATER_BUFFER_DIR, flag --buffer-dir.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/highwater-dev/highwater/hlc"
	"github.com/highwater-dev/highwater/internal/bytesize"
	"github.com/highwater-dev/highwater/internal/redact"
	"github.com/highwater-dev/highwater/processor"
)

// Config is the configuration of `highwater run`.
type Config struct {
	// Brokers are the Kafka seed brokers (host:port).
	Brokers []string `yaml:"brokers"`
	// KafkaTLS connects to the brokers with TLS. Setting any kafka_tls_*
	// field turns it on too.
	KafkaTLS bool `yaml:"kafka_tls"`
	// KafkaTLSCA is a PEM file of the CA certificates that sign the
	// brokers' certificates (default: the system's roots).
	KafkaTLSCA string `yaml:"kafka_tls_ca"`
	// KafkaTLSCert and KafkaTLSKey are PEM files of the client certificate
	// and its key, for brokers that require mutual TLS.
	KafkaTLSCert string `yaml:"kafka_tls_cert"`
	KafkaTLSKey  string `yaml:"kafka_tls_key"`
	// KafkaTLSInsecureSkipVerify accepts any broker certificate: for tests
	// only.
	KafkaTLSInsecureSkipVerify bool `yaml:"kafka_tls_insecure_skip_verify"`
	// KafkaSASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty
	// means no SASL.
	KafkaSASLMechanism string `yaml:"kafka_sasl_mechanism"`
	// KafkaSASLUser and KafkaSASLPassword are the SASL credentials.
	KafkaSASLUser     string `yaml:"kafka_sasl_user"`
	KafkaSASLPassword string `yaml:"kafka_sasl_password"`
	// KafkaSASLPasswordFile is a file holding the SASL password (a mounted
	// secret); it is read at load, trailing newlines dropped.
	KafkaSASLPasswordFile string `yaml:"kafka_sasl_password_file"`
	// Registry is the Schema Registry URL the changefeed registers with.
	Registry string `yaml:"registry"`
	// RegistryUser and RegistryPassword are the registry's basic-auth
	// credentials, if it wants them.
	RegistryUser     string `yaml:"registry_user"`
	RegistryPassword string `yaml:"registry_password"`
	// RegistryPasswordFile is a file holding the registry password; it is
	// read at load, trailing newlines dropped.
	RegistryPasswordFile string `yaml:"registry_password_file"`
	// RegistryTLSCA is a PEM file of the CA certificates that sign the
	// registry's certificate (default: the system's roots); RegistryTLSCert
	// and RegistryTLSKey are a client certificate and key for mutual TLS.
	// They need an https:// registry URL.
	RegistryTLSCA   string `yaml:"registry_tls_ca"`
	RegistryTLSCert string `yaml:"registry_tls_cert"`
	RegistryTLSKey  string `yaml:"registry_tls_key"`
	// Topics are the changefeeds' topics; with the shared frontier (the
	// default) they have one frontier. Empty with Feeds: the feeds' topics.
	Topics []string `yaml:"topics"`
	// Feeds groups the topics into named feeds, say one per CockroachDB
	// changefeed; a topic in none is a feed of its own (config/feeds.go).
	Feeds FeedList `yaml:"feeds"`
	// Frontier is shared (default: one consistent cut over every topic) or
	// independent (each feed its own frontier, windows and checkpoints).
	Frontier string `yaml:"frontier"`
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
	// MemoryLimit is the memory this process may use, in bytes (suffixes
	// KiB, MiB, GiB accepted), split between the Go heap, DuckDB and
	// headroom (docs/OPERATIONS.md). Empty (the default) takes the
	// container's cgroup memory limit when there is one; "0" means none.
	MemoryLimit string `yaml:"memory_limit"`
	// Changelog adds <table>_changes tables holding every version.
	Changelog bool `yaml:"changelog"`
	// SplitColumnFamilies says the changefeed was created WITH
	// split_column_families: each "<table>.<family>" is mirrored as a
	// table and "<table>" is a view over its families (docs/DECODING.md).
	SplitColumnFamilies bool `yaml:"split_column_families"`
	// StopAt makes run exit 0 once every partition of every feed topic is
	// applied through a resolved timestamp >= this HLC.
	StopAt string `yaml:"stop_at"`
	// SessionTimeout is how quickly a dead member's partitions move. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout must exceed the longest flush. Default 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// StartupTimeout bounds the wait for brokers and topics at start. Default 30s.
	StartupTimeout time.Duration `yaml:"startup_timeout"`
	// OnError is what happens to a poison record (one that can never be
	// decoded or applied): fail (stop with an error naming topic,
	// partition, offset, schema id and cause), dlq (set it aside in the
	// dead-letter topic and the highwater_dlq table, go on) or skip (count,
	// log, go on). Default fail. The words are processor.ErrorPolicies,
	// which validation and the flag help take from there.
	OnError string `yaml:"on_error"`
	// DLQTopic is the dead-letter topic of --on-error=dlq, created if
	// missing. Default "<group>.dlq".
	DLQTopic string `yaml:"dlq_topic"`
	// MaxClockSkew is how far ahead of this host's clock a record's
	// timestamp (a row's updated, a resolved timestamp) may be; a record
	// beyond it is a poison record (--on-error), because one timestamp from
	// the future would move a checkpoint past every later row. Default 5m:
	// far above CockroachDB's own --max-offset (500ms), well below any
	// forged or corrupted timestamp. It must be positive; a huge value
	// (876000h, 100 years) turns the check off.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// AllowRetentionGap lets a member go on from the log start when Kafka's
	// retention deleted records of a partition before they were applied,
	// instead of stopping with an error (docs/OPERATIONS.md, "Retention
	// gaps"). The gap is logged at error level and counted. Default false.
	AllowRetentionGap bool `yaml:"allow_retention_gap"`
	// HeadersJSONColumn names the JSONB column of a changefeed created WITH
	// headers_json_column_name = '<column>': CockroachDB leaves it out of
	// the values and sends it as Kafka headers, and highwater puts it back
	// into every row as a JSON object of the headers (docs/DECODING.md).
	// Empty (the default): headers are ignored.
	HeadersJSONColumn string `yaml:"headers_json_column"`
	// MetricsAddr serves Prometheus /metrics, /healthz and /readyz when set
	// (e.g. ":9464").
	MetricsAddr string `yaml:"metrics_addr"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is auto, json or console; auto (the default) is console on
	// a terminal, json otherwise.
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
		{"kafka-tls", "connect to the brokers with TLS (implied by any kafka-tls-* setting)", &c.KafkaTLS},
		{"kafka-tls-ca", "PEM file of the CA certificates that sign the brokers' certificates (default: system roots)", &c.KafkaTLSCA},
		{"kafka-tls-cert", "PEM file of the client certificate, for brokers that require mutual TLS", &c.KafkaTLSCert},
		{"kafka-tls-key", "PEM file of the client certificate's private key", &c.KafkaTLSKey},
		{"kafka-tls-insecure-skip-verify", "accept any broker certificate (tests only)", &c.KafkaTLSInsecureSkipVerify},
		{"kafka-sasl-mechanism", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)", &c.KafkaSASLMechanism},
		{"kafka-sasl-user", "Kafka SASL user", &c.KafkaSASLUser},
		{"kafka-sasl-password", "Kafka SASL password (secret; prefer the env var or kafka-sasl-password-file)", &c.KafkaSASLPassword},
		{"kafka-sasl-password-file", "file holding the Kafka SASL password, read at start", &c.KafkaSASLPasswordFile},
		{"registry", "Schema Registry URL (http:// or https://)", &c.Registry},
		{"registry-user", "Schema Registry basic-auth user", &c.RegistryUser},
		{"registry-password", "Schema Registry basic-auth password (secret; prefer the env var or registry-password-file)", &c.RegistryPassword},
		{"registry-password-file", "file holding the Schema Registry password, read at start", &c.RegistryPasswordFile},
		{"registry-tls-ca", "PEM file of the CA certificates that sign the registry's certificate (default: system roots)", &c.RegistryTLSCA},
		{"registry-tls-cert", "PEM file of a client certificate for the registry (mutual TLS)", &c.RegistryTLSCert},
		{"registry-tls-key", "PEM file of the registry client certificate's private key", &c.RegistryTLSKey},
		{"topics", "changefeed topics, comma separated (one feed unless feeds groups them)", &c.Topics},
		{"feeds", "named groups of topics, NAME=TOPIC,TOPIC;NAME=TOPIC (a topic in none is a feed of its own; topics defaults to theirs)", &c.Feeds},
		{"frontier", "shared (one consistent cut over every feed) or independent (each feed its own frontier, windows and watermark)", &c.Frontier},
		{"group", "Kafka consumer group; also names the warehouse checkpoints", &c.Group},
		{"sink", "warehouse URL: duckdb:///abs/path.duckdb | postgres://user:pass@host/db | file:///dir?format=parquet | s3://bucket/prefix?region=...", &c.Sink},
		{"buffer-dir", "directory of the Badger event buffer", &c.BufferDir},
		{"buffer-budget", "buffer disk budget (e.g. 8GiB); fetching pauses when reached; 0 = unlimited", &c.BufferBudget},
		{"memory-limit", "memory this process may use (e.g. 512MiB), split between the Go heap, DuckDB and headroom; empty: the cgroup's memory limit if any; 0: none", &c.MemoryLimit},
		{"changelog", "also write <table>_changes with every version", &c.Changelog},
		{"split-column-families", "the changefeed is WITH split_column_families: also present each <table> as a view over its <table>.<family> mirrors", &c.SplitColumnFamilies},
		{"stop-at", "exit 0 once every partition is applied through this HLC (WALLNANOS.LOGICAL)", &c.StopAt},
		{"session-timeout", "consumer-group session timeout (how fast a dead member's partitions move)", &c.SessionTimeout},
		{"rebalance-timeout", "consumer-group rebalance timeout (must exceed the longest flush)", &c.RebalanceTimeout},
		{"startup-timeout", "how long to wait for brokers and topics at start", &c.StartupTimeout},
		{"on-error", processor.ErrorPolicyHelp(), &c.OnError},
		{"dlq-topic", "dead-letter topic of --on-error=dlq, created if missing (default <group>.dlq)", &c.DLQTopic},
		{"max-clock-skew", "a record whose timestamp is further ahead of this host's clock is poison (--on-error); > 0, a huge value such as 876000h turns the check off", &c.MaxClockSkew},
		{"allow-retention-gap", "go on from the log start when Kafka's retention deleted records before they were applied (logged, counted; the changes in them are lost) instead of stopping", &c.AllowRetentionGap},
		{"headers-json-column", "the changefeed's headers_json_column_name: put that JSONB column back into each row from the record's Kafka headers (empty: ignore headers)", &c.HeadersJSONColumn},
		{"metrics-addr", "serve Prometheus /metrics, /healthz, /readyz on this address (e.g. :9464)", &c.MetricsAddr},
		{"log-level", "debug, info, warn or error", &c.LogLevel},
		{"log-format", "auto, json or console (auto: console on a terminal, else json)", &c.LogFormat},
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
		OnError:          string(processor.OnErrorFail),
		Frontier:         string(processor.FrontierShared),
		MaxClockSkew:     5 * time.Minute,
		LogLevel:         "info",
		LogFormat:        "auto",
	}
}

// EnvName is the environment variable of a flag name: buffer-dir ->
// HIGHWATER_BUFFER_DIR.
func EnvName(flagName string) string {
	return "HIGHWATER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load parses args (flags of `highwater run`, including --config FILE) on
// top of the YAML file and env, reads the password files, and validates the
// result. getenv is usually os.Getenv. A configuration that parses but does
// not validate is returned with an error listing every problem.
func Load(args []string, getenv func(string) string) (Config, error) {
	l := NewLoader("run", getenv)
	if err := l.FlagSet().Parse(args); err != nil {
		return Config{}, err
	}
	if l.FlagSet().NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", l.FlagSet().Args())
	}
	return l.Load()
}

// Loader builds a Config from defaults, a YAML file, env and flags for a
// command that has flags of its own: add FlagSet to the command's flags (or
// parse it), then call Load (validated) or Merge (not validated).
type Loader struct {
	fs         *pflag.FlagSet
	getenv     func(string) string
	configFile *string
	// fromFlags receives the flags, so that only flags actually given
	// override the file and env.
	fromFlags Config
}

// NewLoader returns a Loader whose FlagSet, named name, holds --config and
// one flag per configuration field, each showing its default and its
// environment variable in the help. getenv is usually os.Getenv.
func NewLoader(name string, getenv func(string) string) *Loader {
	l := &Loader{fs: pflag.NewFlagSet(name, pflag.ContinueOnError), getenv: getenv, fromFlags: Defaults()}
	l.fs.SetOutput(io.Discard)
	l.fs.SortFlags = false
	l.configFile = l.fs.String("config", getenv("HIGHWATER_CONFIG"), "YAML configuration file (env HIGHWATER_CONFIG)")
	for _, f := range l.fromFlags.fields() {
		f.register(l.fs)
	}
	return l
}

// FlagSet is the loader's flag set. Parse it, or add it to a command's flag
// set (pflag.FlagSet.AddFlagSet) that is parsed, before Load or Merge.
func (l *Loader) FlagSet() *pflag.FlagSet { return l.fs }

// Merge returns defaults < YAML file < env < flags given, with the password
// files read, without validating the result.
func (l *Loader) Merge() (Config, error) {
	c, err := l.merge()
	if err != nil {
		return Config{}, err
	}
	return c, c.readSecretFiles()
}

// Load is Merge followed by Validate; every problem found is in the error.
func (l *Loader) Load() (Config, error) {
	c, err := l.merge()
	if err != nil {
		return Config{}, err
	}
	return c, errors.Join(c.readSecretFiles(), c.Validate())
}

func (l *Loader) merge() (Config, error) {
	c := Defaults()
	if *l.configFile != "" {
		if err := c.loadFile(*l.configFile); err != nil {
			return Config{}, err
		}
	}
	for _, f := range c.fields() {
		if v := l.getenv(EnvName(f.flag)); v != "" {
			if err := f.set(v); err != nil {
				// The value is not quoted: it may be a secret.
				return Config{}, fmt.Errorf("env %s: invalid value for --%s: want %s", EnvName(f.flag), f.flag, f.kind())
			}
		}
	}
	// Changed, not Visit: when the flags were added to a command's own flag
	// set, that set parsed them and only the flags themselves know.
	given := map[string]bool{}
	l.fs.VisitAll(func(fl *pflag.Flag) { given[fl.Name] = fl.Changed })
	mine, theirs := c.fields(), l.fromFlags.fields()
	for i := range mine {
		if given[mine[i].flag] {
			copyValue(mine[i].ptr, theirs[i].ptr)
		}
	}
	c.fillTopics()
	return c, nil
}

// Usage returns the flag reference of `highwater run`: each flag with its
// default and environment variable.
func Usage() string {
	return NewLoader("run", func(string) string { return "" }).FlagSet().FlagUsages()
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

func (f field) register(fs *pflag.FlagSet) {
	usage := f.usage + " (env " + EnvName(f.flag) + ")"
	switch p := f.ptr.(type) {
	case *string:
		fs.StringVar(p, f.flag, *p, usage)
	case *bool:
		fs.BoolVar(p, f.flag, *p, usage)
	case *time.Duration:
		fs.DurationVar(p, f.flag, *p, usage)
	case *[]string:
		fs.Var((*listValue)(p), f.flag, usage)
	case pflag.Value:
		fs.Var(p, f.flag, usage)
	}
}

// listValue is a comma-separated list flag: each use replaces the list, as
// the env var and YAML field do.
type listValue []string

func (l *listValue) String() string     { return strings.Join(*l, ",") }
func (l *listValue) Set(s string) error { *l = splitList(s); return nil }
func (l *listValue) Type() string       { return "list" }

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
	case pflag.Value:
		return p.Set(v)
	}
	return nil
}

// kind says what a value of the field looks like, for error messages.
func (f field) kind() string {
	switch f.ptr.(type) {
	case *bool:
		return "true or false"
	case *time.Duration:
		return "a duration such as 10s or 2m"
	case *[]string:
		return "a comma-separated list"
	case *FeedList:
		return "NAME=TOPIC,TOPIC;NAME=TOPIC"
	}
	return "a string"
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
	case *FeedList:
		*d = *src.(*FeedList)
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
		errs = append(errs, fmt.Errorf("registry %q: want an http:// or https:// URL", RedactURL(c.Registry)))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("no topics: set --topics to the changefeed's topics (env HIGHWATER_TOPICS)"))
	}
	errs = append(errs, c.validateFeeds()...)
	if c.Group == "" {
		errs = append(errs, errors.New("empty --group"))
	}
	if c.Sink == "" {
		errs = append(errs, errors.New("no warehouse: set --sink, e.g. duckdb:///var/lib/highwater/warehouse.duckdb"))
	} else if _, err := url.Parse(c.Sink); err != nil {
		// url.Error quotes the whole URL, password included.
		errs = append(errs, fmt.Errorf("sink %s: not a valid URL", RedactURL(c.Sink)))
	}
	if _, err := c.Budget(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.MemoryLimitBytes(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.StopAtHLC(); err != nil {
		errs = append(errs, err)
	}
	if _, err := processor.ParseErrorPolicy(c.OnError); err != nil {
		errs = append(errs, err)
	}
	if c.MaxClockSkew <= 0 {
		errs = append(errs, fmt.Errorf("max-clock-skew %s: want a positive duration such as 5m (876000h turns the check off)", c.MaxClockSkew))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "", "auto", "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log format %q: want auto, json or console", c.LogFormat))
	}
	errs = append(errs, c.validateSecurity()...)
	return errors.Join(errs...)
}

// StopAtHLC parses StopAt; the zero HLC means "run forever".
func (c *Config) StopAtHLC() (hlc.Timestamp, error) {
	if c.StopAt == "" {
		return hlc.Timestamp{}, nil
	}
	h, err := hlc.Parse(c.StopAt)
	if err != nil {
		return h, fmt.Errorf("stop-at: %w", err)
	}
	return h, nil
}

// Budget parses BufferBudget into bytes.
func (c *Config) Budget() (int64, error) {
	return ParseBytes(c.BufferBudget)
}

// MinMemoryLimit is the smallest --memory-limit accepted: Badger's
// memtables and caches alone hold ~80 MiB, and the Go garbage collector
// needs room above the live heap.
const MinMemoryLimit = 256 << 20

// MemoryLimitBytes parses MemoryLimit: -1 when it is empty (take the
// cgroup's limit), 0 for none, else the limit in bytes.
func (c *Config) MemoryLimitBytes() (int64, error) {
	if strings.TrimSpace(c.MemoryLimit) == "" {
		return -1, nil
	}
	n, err := ParseBytes(c.MemoryLimit)
	if err != nil {
		return 0, fmt.Errorf("memory-limit: %w", err)
	}
	if n > 0 && n < MinMemoryLimit {
		return 0, fmt.Errorf("memory-limit %q: below the minimum of 256MiB (0 for no limit)", c.MemoryLimit)
	}
	return n, nil
}

// ParseBytes parses sizes such as 512MiB, 8GiB, 1.5GB or 1048576
// (bytesize.Parse).
func ParseBytes(s string) (int64, error) { return bytesize.Parse(s) }

// Redacted returns c as YAML with secrets replaced, for logs and
// `config check`.
func (c Config) Redacted() string {
	for _, f := range c.fields() {
		if p, ok := f.ptr.(*string); ok && isSecret(f.flag) && *p != "" {
			*p = "REDACTED"
		}
	}
	c.Registry = RedactURL(c.Registry)
	c.Sink = RedactURL(c.Sink)
	out, _ := yaml.Marshal(c)
	return string(out)
}

// RedactURL returns raw with its password, and query parameters that look
// like secrets, replaced by REDACTED: safe for logs and error messages. It
// is internal/redact's URL, the one redaction used everywhere.
func RedactURL(raw string) string { return redact.URL(raw) }
