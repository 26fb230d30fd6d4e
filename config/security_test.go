package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/schemas"
)

// pki is a throwaway CA with a server and a client certificate, as PEM
// files in a test directory.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
	server                                               tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "highwater test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string, pair tls.Certificate) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
		pair, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, pair
	}
	p.serverCert, p.serverKey, p.server = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey, _ = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serverTLS is the broker's or registry's side; with mutual it demands a
// client certificate signed by the CA.
func (p *pki) serverTLS(mutual bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.pool
	}
	return cfg
}

// roundTrip produces one record with a client built from opts and reads it
// back, as the processor's clients would.
func roundTrip(ctx context.Context, brokers []string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequestRetries(1)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("hello")}).FirstErr(); err != nil {
		return err
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return err
		}
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Value) != "hello" {
				return errors.New("read back " + string(recs[0].Value))
			}
			return nil
		}
	}
}

func TestKafkaTLSAndSASLAgainstKfake(t *testing.T) {
	p := newPKI(t)
	const user, pass = "hw-user", "kafka-pw-7731"
	for _, tc := range []struct {
		name   string
		broker []kfake.Opt
		cfg    Config
	}{
		{"TLS", []kfake.Opt{kfake.TLS(p.serverTLS(false))},
			Config{KafkaTLS: true, KafkaTLSCA: p.caFile}},
		{"mutual TLS", []kfake.Opt{kfake.TLS(p.serverTLS(true))},
			Config{KafkaTLSCA: p.caFile, KafkaTLSCert: p.clientCert, KafkaTLSKey: p.clientKey}},
		{"SASL PLAIN", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", user, pass)},
			Config{KafkaSASLMechanism: "PLAIN", KafkaSASLUser: user, KafkaSASLPassword: pass}},
		{"SASL SCRAM-SHA-256", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, pass)},
			Config{KafkaSASLMechanism: "scram-sha-256", KafkaSASLUser: user, KafkaSASLPassword: pass}},
		{"SASL SCRAM-SHA-512 over mutual TLS", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass), kfake.TLS(p.serverTLS(true))},
			Config{KafkaSASLMechanism: "SCRAM-SHA-512", KafkaSASLUser: user, KafkaSASLPassword: pass,
				KafkaTLSCA: p.caFile, KafkaTLSCert: p.clientCert, KafkaTLSKey: p.clientKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}, tc.broker...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if errs := tc.cfg.validateSecurity(); len(errs) > 0 {
				t.Fatalf("validate: %v", errs)
			}
			opts, err := tc.cfg.KafkaOptions()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := roundTrip(ctx, c.ListenAddrs(), opts); err != nil {
				t.Fatalf("produce and consume with %s: %v", tc.name, err)
			}
			// The same cluster without the security settings must refuse
			// us, or the test proves nothing.
			bare := Config{Brokers: c.ListenAddrs()}
			if err := bare.WaitForKafka(ctx, nil); err == nil {
				t.Fatal("a client without TLS/SASL settings got through")
			}
			if tc.cfg.KafkaTLSCert != "" {
				noCert := tc.cfg
				noCert.Brokers, noCert.KafkaTLSCert, noCert.KafkaTLSKey = c.ListenAddrs(), "", ""
				if err := noCert.WaitForKafka(ctx, nil); err == nil || !strings.Contains(err.Error(), "check kafka_tls_cert and kafka_tls_key") {
					t.Fatalf("without the client certificate: %v, want a hint at kafka_tls_cert", err)
				}
			}
		})
	}
}

func TestKafkaWrongCredentialsGiveAClearError(t *testing.T) {
	p := newPKI(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "hw", "right-password"), kfake.Superuser("PLAIN", "hw", "right-password"),
		kfake.TLS(p.serverTLS(false)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other := newPKI(t) // a CA that did not sign the broker's certificate
	good := Config{Brokers: c.ListenAddrs(), KafkaTLSCA: p.caFile, KafkaSASLMechanism: "SCRAM-SHA-256", KafkaSASLUser: "hw", KafkaSASLPassword: "right-password"}
	if err := good.WaitForKafka(context.Background(), nil); err != nil {
		t.Fatalf("WaitForKafka with the right settings: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"wrong SCRAM password", func(c *Config) { c.KafkaSASLPassword = "wrong-password-123" },
			`during SASL SCRAM-SHA-256 as user "hw": wrong password`},
		{"wrong PLAIN password", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLPassword = "PLAIN", "wrong-password-123" },
			`during SASL PLAIN as user "hw": wrong password`},
		{"no SASL", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPassword = "", "", "" },
			"require SASL (kafka_sasl_mechanism)"},
		{"unknown CA", func(c *Config) { c.KafkaTLSCA = other.caFile }, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			err := cfg.WaitForKafka(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "password-123") {
				t.Fatalf("error quotes the password: %v", err)
			}
		})
	}
	// Unreachable brokers are waited for up to the startup timeout, said
	// once, then named in the error.
	down := Config{Brokers: []string{"127.0.0.1:1"}, StartupTimeout: 1500 * time.Millisecond}
	var said []time.Duration
	err = down.WaitForKafka(context.Background(), func(d time.Duration) { said = append(said, d) })
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka brokers [127.0.0.1:1] within 1.5s") {
		t.Fatalf("WaitForKafka on a closed port = %v, want it to name the brokers and the timeout", err)
	}
	if len(said) != 1 || said[0] <= 0 || said[0] > 1500*time.Millisecond {
		t.Fatalf("waiting was told %v, want once with the time left", said)
	}
}

func TestRegistryTLSAndBasicAuth(t *testing.T) {
	p := newPKI(t)
	const user, pass = "sr-user", "sr-pw-5521"
	fake := srfake.NewRegistry(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))))
	id, _, err := fake.RegisterSchema("t-value", sr.Schema{Schema: `"string"`})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(fake.Handler())
	srv.TLS = p.serverTLS(true)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()

	fetch := func(c Config) (string, error) {
		opts, err := c.RegistryOptions()
		if err != nil {
			return "", err
		}
		reg, err := schemas.NewRegistry(srv.URL, append(opts, schemas.WithRetryBackoff(time.Millisecond, time.Millisecond))...)
		if err != nil {
			return "", err
		}
		// Refusals are retried until the context ends: a short one.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return reg.Schema(ctx, id)
	}
	good := Config{Registry: srv.URL, RegistryUser: user, RegistryPassword: pass,
		RegistryTLSCA: p.caFile, RegistryTLSCert: p.clientCert, RegistryTLSKey: p.clientKey}
	if errs := good.validateSecurity(); len(errs) > 0 {
		t.Fatalf("validate: %v", errs)
	}
	if s, err := fetch(good); err != nil || !strings.Contains(s, "string") {
		t.Fatalf("schema over TLS with basic auth = %q, %v", s, err)
	}
	noCert := good
	noCert.RegistryTLSCert, noCert.RegistryTLSKey = "", ""
	if _, err := fetch(noCert); err == nil {
		t.Fatal("registry accepted a client without its certificate")
	}
	badPass := good
	badPass.RegistryPassword = "not-it"
	if _, err := fetch(badPass); err == nil {
		t.Fatal("registry accepted a wrong password")
	} else if strings.Contains(err.Error(), "not-it") {
		t.Fatalf("error quotes the password: %v", err)
	}
}

func TestPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	kafkaFile := filepath.Join(dir, "kafka-pw")
	regFile := filepath.Join(dir, "reg-pw")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(kafkaFile, []byte("from-file-k\n"), 0o600)
	os.WriteFile(regFile, []byte("from-file-r\r\n"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	base := []string{"--brokers", "b:1", "--registry", "http://r", "--topics", "t", "--sink", "duckdb:///x",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--registry-user", "ru"}

	c, err := Load(append(base, "--kafka-sasl-password-file", kafkaFile), env(map[string]string{"HIGHWATER_REGISTRY_PASSWORD_FILE": regFile}))
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaSASLPassword != "from-file-k" || c.RegistryPassword != "from-file-r" {
		t.Fatalf("passwords = %q, %q; want the files' contents without the newline", c.KafkaSASLPassword, c.RegistryPassword)
	}
	opts, err := c.RegistryOptions()
	if err != nil || len(opts) != 1 {
		t.Fatalf("registry options = %d, %v; want basic auth", len(opts), err)
	}

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"both inline and file", append(base, "--kafka-sasl-password-file", kafkaFile), map[string]string{"HIGHWATER_KAFKA_SASL_PASSWORD": "inline"},
			"kafka_sasl_password and kafka_sasl_password_file are both set"},
		{"missing file", append(base, "--kafka-sasl-password-file", filepath.Join(dir, "nope")), nil, "kafka_sasl_password_file: open"},
		{"empty file", append(base, "--kafka-sasl-password-file", kafkaFile, "--registry-password-file", empty), nil, "registry_password_file " + empty + " is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "from-file") || strings.Contains(err.Error(), "inline") {
				t.Fatalf("error quotes a password: %v", err)
			}
		})
	}
}

func TestSecurityValidationListsEveryProblem(t *testing.T) {
	p := newPKI(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	base := []string{"--brokers", "b:1", "--registry", "http://r", "--topics", "t", "--sink", "duckdb:///x"}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown mechanism", []string{"--kafka-sasl-mechanism", "GSSAPI"}, []string{`kafka_sasl_mechanism "GSSAPI"`}},
		{"mechanism without credentials", []string{"--kafka-sasl-mechanism", "SCRAM-SHA-512"},
			[]string{"needs a user", "needs a password"}},
		{"credentials without mechanism", []string{"--kafka-sasl-user", "u"}, []string{"without kafka_sasl_mechanism"}},
		{"cert without key", []string{"--kafka-tls-cert", p.clientCert}, []string{"kafka_tls_cert and kafka_tls_key go together"}},
		{"CA that is not PEM", []string{"--kafka-tls-ca", junk}, []string{"kafka_tls_ca " + junk + ": no PEM certificate"}},
		{"missing CA file", []string{"--registry-tls-ca", "/nonexistent/ca.pem"}, []string{"registry_tls_ca: open /nonexistent/ca.pem", "is http://"}},
		{"key that does not match", []string{"--kafka-tls-cert", p.clientCert, "--kafka-tls-key", p.serverKey}, []string{"kafka_tls_cert", "private key does not match"}},
		{"registry password without user", []string{"--registry-password", "pw"}, []string{"registry_password set without registry_user"}},
		{"all at once", []string{"--kafka-sasl-mechanism", "NOPE", "--kafka-tls-key", p.clientKey, "--log-format", "xml"},
			[]string{"NOPE", "go together", `log format "xml"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(append(append([]string{}, base...), tc.args...), env(nil))
			if err == nil {
				t.Fatalf("Load accepted %q", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestSecretsNeverInErrorsOrRedactedOutput(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("file-secret-9981\n"), 0o600)
	secrets := []string{"file-secret-9981", "kafka-secret-1234", "sink-secret-5678", "reg-url-secret-4321", "reg-secret-8765"}
	// A valid configuration full of secrets: Redacted must hide them all.
	c, err := Load([]string{"--brokers", "b:1", "--topics", "t",
		"--registry", "https://u:reg-url-secret-4321@r:8081",
		"--sink", "postgres://hw:sink-secret-5678@db:5432/wh?sslmode=disable",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", pwFile,
		"--registry-user", "ru"}, env(map[string]string{"HIGHWATER_REGISTRY_PASSWORD": "reg-secret-8765"}))
	if err != nil {
		t.Fatal(err)
	}
	out := c.Redacted()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("Redacted() contains %q:\n%s", s, out)
		}
	}
	for _, want := range []string{"kafka_sasl_password: REDACTED", "registry_password: REDACTED", "kafka_sasl_password_file: " + pwFile, "db:5432"} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted() lacks %q:\n%s", want, out)
		}
	}
	// Invalid configurations whose errors could quote a secret.
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--registry", "ftp://u:reg-url-secret-4321@r", "--sink", "postgres://u:sink-secret-5678@[::1"}, nil},
		{[]string{"--registry", "http://u:reg-url-secret-4321@r:bad port", "--kafka-sasl-password", "kafka-secret-1234"}, nil},
		// A password file used as a CA: the error names the file, not its content.
		{[]string{"--registry-tls-ca", pwFile, "--kafka-tls-ca", pwFile, "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-password", "kafka-secret-1234"}, nil},
		{nil, map[string]string{"HIGHWATER_CHANGELOG": "reg-secret-8765"}},
		{nil, map[string]string{"HIGHWATER_SESSION_TIMEOUT": "kafka-secret-1234"}},
	} {
		_, err := Load(tc.args, env(tc.env))
		if err == nil {
			t.Fatalf("Load(%q) succeeded", tc.args)
		}
		if len(tc.env) > 0 && !strings.Contains(err.Error(), "want ") {
			t.Errorf("env error %q does not say what is wanted", err)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("Load(%q, %v) error quotes %q: %v", tc.args, tc.env, s, err)
			}
		}
	}
}
