package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/highwater-dev/highwater/schemas"
)

// Kafka SASL mechanisms highwater speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// isSecret reports whether the field with this flag name holds a secret
// that must never be printed or logged.
func isSecret(flagName string) bool {
	switch flagName {
	case "kafka-sasl-password", "registry-password":
		return true
	}
	return false
}

// readSecretFiles fills the passwords from their *_file fields. A password
// given both inline and as a file is an error: which one wins would be a
// guess.
func (c *Config) readSecretFiles() error {
	var errs []error
	read := func(name, file string, dst *string) {
		if file == "" {
			return
		}
		if *dst != "" {
			errs = append(errs, fmt.Errorf("%s and %s_file are both set: use one", name, name))
			return
		}
		data, err := os.ReadFile(file)
		if err != nil {
			// The path is not a secret; os errors never quote the content.
			errs = append(errs, fmt.Errorf("%s_file: %w", name, err))
			return
		}
		// Secrets mounted from Kubernetes or written by echo end in a
		// newline that is not part of the password.
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			errs = append(errs, fmt.Errorf("%s_file %s is empty", name, file))
			return
		}
		*dst = pw
	}
	read("kafka_sasl_password", c.KafkaSASLPasswordFile, &c.KafkaSASLPassword)
	read("registry_password", c.RegistryPasswordFile, &c.RegistryPassword)
	return errors.Join(errs...)
}

// KafkaTLSEnabled reports whether the brokers are dialled with TLS:
// kafka_tls or any kafka_tls_* setting.
func (c *Config) KafkaTLSEnabled() bool {
	return c.KafkaTLS || c.KafkaTLSCA != "" || c.KafkaTLSCert != "" || c.KafkaTLSKey != "" || c.KafkaTLSInsecureSkipVerify
}

// saslMechanism returns KafkaSASLMechanism in its canonical spelling.
func (c *Config) saslMechanism() string {
	return strings.ToUpper(strings.TrimSpace(c.KafkaSASLMechanism))
}

// validateSecurity checks the TLS and SASL settings, loading the
// certificate files so that a bad path or PEM shows at start (and in
// `config check`), not at the first connection.
func (c *Config) validateSecurity() []error {
	var errs []error
	switch m := c.saslMechanism(); m {
	case "":
		if c.KafkaSASLUser != "" || c.KafkaSASLPassword != "" || c.KafkaSASLPasswordFile != "" {
			errs = append(errs, errors.New("kafka_sasl_user or password set without kafka_sasl_mechanism: set --kafka-sasl-mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.KafkaSASLUser == "" {
			errs = append(errs, fmt.Errorf("kafka_sasl_mechanism %s needs a user: set --kafka-sasl-user (env HIGHWATER_KAFKA_SASL_USER)", m))
		}
		// With a password file, readSecretFiles reports its problem.
		if c.KafkaSASLPassword == "" && c.KafkaSASLPasswordFile == "" {
			errs = append(errs, fmt.Errorf("kafka_sasl_mechanism %s needs a password: set HIGHWATER_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file", m))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka_sasl_mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.KafkaSASLMechanism))
	}
	if _, err := c.KafkaTLSConfig(); err != nil {
		errs = append(errs, err)
	}

	if c.RegistryPassword != "" && c.RegistryUser == "" && c.RegistryPasswordFile == "" {
		errs = append(errs, errors.New("registry_password set without registry_user: set --registry-user"))
	}
	if c.RegistryPasswordFile != "" && c.RegistryUser == "" {
		errs = append(errs, errors.New("registry_password_file set without registry_user: set --registry-user"))
	}
	if c.RegistryTLSCA != "" || c.RegistryTLSCert != "" || c.RegistryTLSKey != "" {
		if u, err := url.Parse(c.Registry); err == nil && u.Scheme == "http" {
			errs = append(errs, fmt.Errorf("registry_tls_* set but registry %s is http://: use https://", RedactURL(c.Registry)))
		}
	}
	if _, err := c.RegistryTLSConfig(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// KafkaTLSConfig returns the TLS configuration for the brokers, or nil when
// TLS is off.
func (c *Config) KafkaTLSConfig() (*tls.Config, error) {
	if !c.KafkaTLSEnabled() {
		return nil, nil
	}
	return buildTLS("kafka_tls", c.KafkaTLSCA, c.KafkaTLSCert, c.KafkaTLSKey, c.KafkaTLSInsecureSkipVerify)
}

// RegistryTLSConfig returns the TLS configuration for the registry, or nil
// when none of registry_tls_* is set (an https:// registry then uses the
// system's roots).
func (c *Config) RegistryTLSConfig() (*tls.Config, error) {
	if c.RegistryTLSCA == "" && c.RegistryTLSCert == "" && c.RegistryTLSKey == "" {
		return nil, nil
	}
	return buildTLS("registry_tls", c.RegistryTLSCA, c.RegistryTLSCert, c.RegistryTLSKey, false)
}

func buildTLS(prefix, caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in, documented as tests only
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s_ca: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_ca %s: no PEM certificate found", prefix, caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("%s_cert and %s_key go together: set both or neither", prefix, prefix)
	default:
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s_cert %s / %s_key %s: %w", prefix, certFile, prefix, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// KafkaOptions returns the franz-go client options for the configured TLS
// and SASL, for processor.Config.KafkaOptions and any other client of the
// same cluster.
func (c *Config) KafkaOptions() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tlsCfg, err := c.KafkaTLSConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	switch m := c.saslMechanism(); m {
	case "":
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: c.KafkaSASLUser, Pass: c.KafkaSASLPassword}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.KafkaSASLUser, Pass: c.KafkaSASLPassword}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.KafkaSASLUser, Pass: c.KafkaSASLPassword}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("kafka_sasl_mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.KafkaSASLMechanism)
	}
	return opts, nil
}

// RegistryOptions returns the registry client's basic-auth and TLS options.
func (c *Config) RegistryOptions() ([]schemas.RegistryOption, error) {
	var opts []schemas.RegistryOption
	if c.RegistryUser != "" {
		opts = append(opts, schemas.WithBasicAuth(c.RegistryUser, c.RegistryPassword))
	}
	tlsCfg, err := c.RegistryTLSConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, schemas.WithTLS(tlsCfg))
	}
	return opts, nil
}

// WaitForKafka waits up to StartupTimeout for the brokers to answer, with
// the configured TLS and SASL settings. waiting, if not nil, is called once
// when the first attempt finds them unreachable, with how long it will
// wait, so that the caller can say so once instead of a warning a retry.
// A wrong password, certificate or mechanism fails at once with what to
// fix, rather than as an endless retry inside the consumer; brokers still unreachable at the deadline fail with
// an error naming them and the timeout.
func (c *Config) WaitForKafka(ctx context.Context, waiting func(time.Duration)) error {
	opts, err := c.KafkaOptions()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.RequestRetries(0)}, opts...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	timeout := c.StartupTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	var last error // the last answer before the deadline cut one short
	for attempt := 0; ; attempt++ {
		pingCtx, cancel := context.WithDeadline(ctx, deadline)
		err = cl.Ping(pingCtx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		if explained := c.explainKafkaError(err); explained != nil {
			return explained
		}
		if !time.Now().Before(deadline) {
			if last == nil {
				last = err
			}
			return fmt.Errorf("cannot reach Kafka brokers %v within %s: %w", c.Brokers, timeout, last)
		}
		last = err
		if attempt == 0 && waiting != nil {
			waiting(time.Until(deadline).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(500*time.Millisecond, time.Until(deadline))):
		}
	}
}

// explainKafkaError turns a failed connection into an error naming the
// settings to check, or nil when the brokers were merely unreachable.
func (c *Config) explainKafkaError(err error) error {
	sasl := ""
	if m := c.saslMechanism(); m != "" {
		sasl = fmt.Sprintf("SASL %s as user %q", m, c.KafkaSASLUser)
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var alert tls.AlertError
	var recErr tls.RecordHeaderError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return fmt.Errorf("kafka brokers %v: TLS: %w (check kafka_tls_ca)", c.Brokers, err)
	case errors.As(err, &alert), strings.Contains(err.Error(), "remote error: tls:"):
		// Go's client-side alert type is unexported: "remote error: tls:
		// certificate required" is only recognisable by its text.
		return fmt.Errorf("kafka brokers %v: TLS: %w (does the broker require a client certificate? check kafka_tls_cert and kafka_tls_key)", c.Brokers, err)
	case errors.As(err, &recErr):
		return fmt.Errorf("kafka brokers %v: %w (the broker does not speak TLS: unset kafka_tls)", c.Brokers, err)
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafka brokers %v: authentication with %s failed: %w (check kafka_sasl_mechanism, kafka_sasl_user and the password)", c.Brokers, sasl, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// Brokers close the connection on failed authentication (kfake)
		// or on a protocol they do not expect (TLS vs plaintext, SASL or
		// not).
		switch {
		case sasl != "":
			return fmt.Errorf("kafka brokers %v closed the connection during %s: wrong password, user or mechanism, or the broker expects TLS (kafka_tls)", c.Brokers, sasl)
		case !c.KafkaTLSEnabled():
			return fmt.Errorf("kafka brokers %v closed the connection: does the broker require TLS (kafka_tls) or SASL (kafka_sasl_mechanism)?", c.Brokers)
		default:
			return fmt.Errorf("kafka brokers %v closed the connection: does the broker require SASL (kafka_sasl_mechanism) or a client certificate (kafka_tls_cert)?", c.Brokers)
		}
	}
	return nil
}
