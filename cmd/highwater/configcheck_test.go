package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/testfeed"
	"github.com/highwater-dev/highwater/simulator"
)

func checkConfig(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = execute(context.Background(), append([]string{"config", "check"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestConfigCheckPrintsTheEffectiveConfigurationRedacted(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "kafka-password")
	os.WriteFile(pwFile, []byte("kafka-file-secret-31\n"), 0o600)
	file := filepath.Join(dir, "hw.yaml")
	os.WriteFile(file, []byte(`
brokers: [k1:9093, k2:9093]
kafka_sasl_mechanism: SCRAM-SHA-512
kafka_sasl_user: highwater
kafka_sasl_password_file: `+pwFile+`
registry: https://sr-user:url-secret-32@registry:8081
registry_user: sr-user
topics: [orders]
group: from-file
sink: postgres://hw:sink-secret-33@db:5432/wh?sslmode=require
changelog: true
`), 0o600)
	out, errOut, err := checkConfig(t, map[string]string{"HIGHWATER_REGISTRY_PASSWORD": "env-secret-34"},
		"--config", file, "--group", "from-flag", "--buffer-budget", "1GiB")
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		"group: from-flag", "buffer_budget: 1GiB", "changelog: true", "- k1:9093", "kafka_sasl_mechanism: SCRAM-SHA-512",
		"kafka_sasl_password: REDACTED", "registry_password: REDACTED", "sink: postgres://hw:REDACTED@db:5432/wh?sslmode=require",
		"registry: https://sr-user:REDACTED@registry:8081", "kafka_sasl_password_file: " + pwFile, "session_timeout: 10s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"kafka-file-secret-31", "url-secret-32", "sink-secret-33", "env-secret-34"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("config check output contains the secret %q:\n%s", secret, out)
		}
	}
}

func TestConfigCheckListsEveryProblem(t *testing.T) {
	out, errOut, err := checkConfig(t, map[string]string{"HIGHWATER_KAFKA_SASL_PASSWORD": "env-secret-35"},
		"--registry", "ftp://u:url-secret-36@r", "--kafka-sasl-mechanism", "SCRAM-SHA-1", "--log-level", "loud")
	if err == nil {
		t.Fatalf("config check accepted an invalid configuration:\n%s", out)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code %d, want 1", exitCode(err))
	}
	problems := []string{"set --brokers", "want an http:// or https:// URL", "no topics", "no warehouse",
		`kafka_sasl_mechanism "SCRAM-SHA-1"`, `log level "loud"`}
	for _, want := range problems {
		if !strings.Contains(errOut, want) {
			t.Errorf("problem %q not listed:\n%s", want, errOut)
		}
	}
	if got := strings.Count(errOut, "\n  - "); got < len(problems) {
		t.Errorf("%d problems listed, want at least %d:\n%s", got, len(problems), errOut)
	}
	if !strings.Contains(err.Error(), "problems") || out != "" {
		t.Errorf("err = %v, stdout %q", err, out)
	}
	for _, secret := range []string{"env-secret-35", "url-secret-36"} {
		if strings.Contains(errOut+err.Error(), secret) {
			t.Errorf("problems quote the secret %q:\n%s", secret, errOut)
		}
	}
	if _, _, err := checkConfig(t, nil, "--nope"); err == nil || !strings.Contains(err.Error(), "unknown flag: --nope") || exitCode(err) != 2 {
		t.Errorf("unknown flag: %v, want a usage error", err)
	}
	var out2, errOut2 bytes.Buffer
	if err := execute(context.Background(), []string{"config", "lint"}, os.Getenv, &out2, &errOut2); err == nil || exitCode(err) != 2 ||
		!strings.Contains(err.Error(), `unknown command "lint"`) {
		t.Errorf("config lint: %v, want a usage error naming the command", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's and the test's
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSecretsNeverReachLogsOrOutput runs the whole pipeline at debug level
// against a broker that wants SASL SCRAM-SHA-512 and a registry that wants
// basic auth, with the passwords in a file and in env, and searches every
// byte it printed for them; then the same for failing runs.
func TestSecretsNeverReachLogsOrOutput(t *testing.T) {
	const (
		kafkaSecret = "kafka-secret-4471"
		regSecret   = "registry-secret-4472"
		sinkSecret  = "sink-secret-4473"
	)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(pwFile, []byte(kafkaSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "hw", kafkaSecret),
		kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the simulator's cleanup, which flushes to it
	// The registry wants basic auth from highwater; the simulator, which
	// has no credentials option, registers its schemas without.
	fake := srfake.NewRegistry()
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("sr-user:"+regSecret))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); auth != wantAuth && (auth != "" || r.Method == http.MethodGet) {
			http.Error(w, `{"error_code":40101,"message":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	defer reg.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	simCfg := config.Config{Brokers: cluster.ListenAddrs(), KafkaSASLMechanism: "SCRAM-SHA-512", KafkaSASLUser: "hw", KafkaSASLPassword: kafkaSecret}
	kopts, err := simCfg.KafkaOptions()
	if err != nil {
		t.Fatal(err)
	}
	sim := testfeed.Sim(t, ctx, simulator.Options{Brokers: cluster.ListenAddrs(), RegistryURL: reg.URL, Partitions: 2, Diff: true, Seed: 7, KafkaOpts: kopts},
		simulator.TelemetryTables()...)
	final := testfeed.Telemetry(t, ctx, sim, simulator.Workload{Txns: 300, KeysPerTable: 30, RowsPerTxn: 2, DeleteProb: 0.1, ResolveEvery: 50})

	t.Setenv("HIGHWATER_REGISTRY_PASSWORD", regSecret)
	args := func(sink string, extra ...string) []string {
		return append([]string{"run", "--brokers", strings.Join(cluster.ListenAddrs(), ","), "--registry", reg.URL, "--registry-user", "sr-user",
			"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", "hw", "--kafka-sasl-password-file", pwFile,
			"--topics", strings.Join(sim.Topics(), ","), "--group", "secrets", "--sink", sink,
			"--buffer-dir", filepath.Join(dir, "buffer"), "--stop-at", final.String(), "--startup-timeout", "5s",
			"--log-level", "debug", "--log-format", "json"}, extra...)
	}
	secrets := []string{kafkaSecret, regSecret, sinkSecret, strings.TrimPrefix(wantAuth, "Basic ")}
	assertClean := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s contains the secret %q", what, s)
			}
		}
	}

	// A complete run: consumes over SASL, reads schemas with basic auth,
	// applies every window, stops at the final resolved timestamp.
	out := newSyncBuffer()
	err = run(ctx, args("duckdb://"+filepath.Join(dir, "wh.duckdb")), out, out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	logs := out.String()
	for _, want := range []string{"stop-at reached", `"level":"debug"`, "window applied", "partitions assigned",
		"effective configuration", `kafka_sasl_password: REDACTED`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run's logs lack %q: is the test seeing what it should?\n%s", want, logs)
		}
	}
	assertClean("the logs of a complete run", logs)

	// config check on the same settings.
	var ccOut, ccErr bytes.Buffer
	if err := run(ctx, append([]string{"config", "check"}, args("postgres://hw:" + sinkSecret + "@db/wh")[1:]...), &ccOut, &ccErr); err != nil {
		t.Fatalf("config check: %v\n%s", err, ccErr.String())
	}
	assertClean("config check", ccOut.String()+ccErr.String())
	if !strings.Contains(ccOut.String(), "kafka_sasl_password: REDACTED") || !strings.Contains(ccOut.String(), "registry_password: REDACTED") {
		t.Errorf("config check does not show the passwords as set:\n%s", ccOut.String())
	}

	// Failing runs: a wrong Kafka password (inline this time), and a
	// warehouse that cannot be reached with a password in its URL.
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"wrong kafka password", []string{"run", "--brokers", cluster.ListenAddrs()[0], "--registry", reg.URL, "--registry-user", "sr-user", "--topics", sim.Topics()[0],
			"--sink", "duckdb://" + filepath.Join(dir, "wh2.duckdb"), "--buffer-dir", filepath.Join(dir, "buffer2"),
			"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", "hw", "--log-level", "debug"},
			"wrong-password-4474", `closed the connection during SASL SCRAM-SHA-512 as user "hw"`},
		{"unreachable warehouse", args("postgres://hw:" + sinkSecret + "@127.0.0.1:1/wh?reconnect_timeout=0s"), "", "postgres://hw:REDACTED@127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("HIGHWATER_KAFKA_SASL_PASSWORD", tc.env)
				secrets = append(secrets, tc.env)
			}
			out := newSyncBuffer()
			err := run(ctx, tc.args, out, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q\n%s", err, tc.want, out)
			}
			assertClean("the error", err.Error())
			assertClean("the logs", out.String())
		})
	}

	// The registry failing, with a password in its URL besides the
	// basic-auth flags: unreachable and 5xx (retried, logged at warn on
	// every attempt) and 401 (the member stops with the error). Each run
	// goes on until its logs show the path ran.
	const urlSecret = "registry-url-secret-4475"
	secrets = append(secrets, urlSecret)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error_code":50001,"message":"down for maintenance"}`, http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	withPassword := func(u string) string { return strings.Replace(u, "http://", "http://sr-user:"+urlSecret+"@", 1) }
	for i, tc := range []struct {
		name, registry string
		extra          []string
		want           string
	}{
		{"registry unreachable", withPassword(goneURL), nil, "schema registry fetch failed; retrying"},
		{"registry 5xx", withPassword(failing.URL), nil, "schema registry fetch failed; retrying"},
		{"registry refuses the credentials", withPassword(reg.URL), []string{"--registry-password", urlSecret}, "HTTP 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			a := args("duckdb://"+filepath.Join(t.TempDir(), "wh.duckdb"), append([]string{"--registry", tc.registry, "--group", fmt.Sprintf("secrets-registry-%d", i),
				"--buffer-dir", filepath.Join(t.TempDir(), "buffer")}, tc.extra...)...)
			out := newSyncBuffer()
			done := make(chan error, 1)
			go func() { done <- run(rctx, a, out, out) }()
			var err error
			deadline := time.After(30 * time.Second)
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-deadline:
					t.Errorf("no %q within 30s", tc.want)
					stop()
				case <-time.After(50 * time.Millisecond):
					if strings.Contains(out.String(), tc.want) {
						stop()
					}
				}
			}
			msgs := out.String()
			if err != nil {
				msgs += err.Error()
			}
			if !strings.Contains(msgs, tc.want) || !strings.Contains(msgs, "sr-user:REDACTED@") {
				t.Errorf("the run did not report %q with the URL redacted: is the test seeing what it should?\n%s", tc.want, msgs)
			}
			assertClean("the logs and error", msgs)
		})
	}

	// Bad sink URLs of every scheme, with passwords, through status,
	// config check and run: unparsable, refused by the writer, unknown.
	const sinkURLSecret = "sink-url-secret-4477"
	secrets = append(secrets, sinkURLSecret)
	for _, sink := range []string{
		"postgres://hw:" + sinkURLSecret + "@db:notaport/wh",
		"postgresql://hw:" + sinkURLSecret + "@db/wh?sslpassword=" + sinkURLSecret + "&sslmode=bogus",
		"duckdb://hw:" + sinkURLSecret + "@%zz/wh.duckdb",
		"duckdb://" + filepath.Join(dir, "x.duckdb") + "?password=" + sinkURLSecret + "&bogus=1",
		"file://" + filepath.Join(dir, "files") + "?password=" + sinkURLSecret + "&format=nope",
		"s3://AKIAEXAMPLE:" + sinkURLSecret + "@bucket/prefix?secret_key=" + sinkURLSecret + "&region=x&nope=1",
		"mysql://hw:" + sinkURLSecret + "@db/wh",
	} {
		for _, cmd := range [][]string{
			{"status", "--sink", sink},
			append([]string{"config", "check"}, args(sink)[1:]...),
			args(sink),
		} {
			out := newSyncBuffer()
			err := run(ctx, cmd, out, out)
			msgs := out.String()
			if err != nil {
				msgs += err.Error()
			}
			if cmd[0] != "config" && err == nil {
				t.Errorf("%s with sink %s: no error", cmd[0], config.RedactURL(sink))
			}
			assertClean(cmd[0]+" with a bad sink URL", msgs)
		}
	}

	// probe, with a password and a token in the URL it checks: refused,
	// 5xx and unparsable.
	for _, target := range []string{
		withPassword(goneURL) + "/healthz?token=" + urlSecret,
		withPassword(failing.URL) + "/healthz",
		"http://u:" + urlSecret + "@%zz/healthz",
	} {
		out := newSyncBuffer()
		err := run(ctx, []string{"probe", target}, out, out)
		if err == nil {
			t.Errorf("probe %s: no error", config.RedactURL(target))
			continue
		}
		assertClean("probe", out.String()+err.Error())
	}
}

// TestConfigCheckValidatesTheSinkAsRunDoes: a sink run would refuse at once
// is a problem config check lists, with the same words.
func TestConfigCheckValidatesTheSinkAsRunDoes(t *testing.T) {
	base := []string{"--brokers", "127.0.0.1:1", "--registry", "http://127.0.0.1:1", "--topics", "t", "--startup-timeout", "1s",
		"--buffer-dir", filepath.Join(t.TempDir(), "buf")}
	for _, tc := range []struct{ sink, want string }{
		{"nonsense://x", `unknown scheme "nonsense"`},
		{"file:///d?format=xml", "xml"},
		{"duckdb://", "no database path"},
		{"postgres://hw:pw-4411@db/wh?reconnect_timeout=soon", "reconnect_timeout"},
	} {
		_, errOut, err := checkConfig(t, nil, append(base, "--sink", tc.sink)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("config check --sink %s: err %v, problems %q, want one mentioning %q", tc.sink, err, errOut, tc.want)
		}
		if strings.Contains(errOut, "pw-4411") {
			t.Errorf("config check quotes the sink's password: %s", errOut)
		}
		// run refuses it with the same words, before waiting for brokers.
		out, err := runArgs(t, append([]string{"run", "--sink", tc.sink}, base...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "cannot reach Kafka") {
			t.Errorf("run --sink %s: %v\n%s", tc.sink, err, out)
		}
	}
	// A sink run accepts passes.
	if _, errOut, err := checkConfig(t, nil, append(base, "--sink", "duckdb:///tmp/x.duckdb?threads=1")...); err != nil {
		t.Errorf("config check on a good sink: %v\n%s", err, errOut)
	}
}
