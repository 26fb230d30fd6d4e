package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/metrics"
	"github.com/highwater-dev/highwater/model"
	"github.com/highwater-dev/highwater/processor"
	"github.com/highwater-dev/highwater/sinks/files"
)

// The tests run in deploy/; the files they check are relative to the
// repository root.
const root = ".."

func repoFile(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string     `yaml:"image"`
	Command     stringList `yaml:"command"`
	Entrypoint  stringList `yaml:"entrypoint"`
	Environment envMap     `yaml:"environment"`
	Ports       []string   `yaml:"ports"`
	Volumes     []string   `yaml:"volumes"`
}

// stringList is a compose command: a list, or a string split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// envMap is a compose environment: a map, or a list of KEY=VALUE.
type envMap map[string]string

func (m *envMap) UnmarshalYAML(n *yaml.Node) error {
	*m = envMap{}
	if n.Kind == yaml.SequenceNode {
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		for _, kv := range s {
			k, v, _ := strings.Cut(kv, "=")
			(*m)[k] = v
		}
		return nil
	}
	var mm map[string]string
	if err := n.Decode(&mm); err != nil {
		return err
	}
	for k, v := range mm {
		(*m)[k] = v
	}
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(repoFile("docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"cockroach", "cockroach-init", "redpanda", "redpanda-topics", "workload", "warehouse", "highwater", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	return c
}

// knownEnv is every environment variable highwater run reads: one per flag
// of `highwater run`, plus HIGHWATER_CONFIG and HIGHWATER_CPUPROFILE.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"HIGHWATER_CONFIG": true, "HIGHWATER_CPUPROFILE": true}
	flags := regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(config.Usage(), -1)
	for _, f := range flags {
		known[config.EnvName(f[1])] = true
	}
	if len(known) < 10 {
		t.Fatalf("found only %d settings in config.Usage(); did its format change?\n%s", len(known), config.Usage())
	}
	return known
}

// highwaterConfig is the configuration the compose file's highwater
// service runs with: its command line and its environment, through the
// same loader as `highwater run`.
func highwaterConfig(t *testing.T, c composeFile) config.Config {
	t.Helper()
	svc := c.Services["highwater"]
	if len(svc.Command) == 0 || svc.Command[0] != "run" {
		t.Fatalf("highwater service command = %q, want `run` and its flags", svc.Command)
	}
	known := knownEnv(t)
	for k := range svc.Environment {
		if strings.HasPrefix(k, "HIGHWATER_") && !known[k] {
			t.Errorf("highwater service sets %s, which highwater does not read", k)
		}
	}
	cfg, err := config.Load(svc.Command[1:], func(k string) string { return svc.Environment[k] })
	if err != nil {
		t.Fatalf("highwater service's command and environment are not a valid configuration: %v", err)
	}
	return cfg
}

func TestComposeHighwaterServiceIsAValidConfiguration(t *testing.T) {
	c := loadCompose(t)
	cfg := highwaterConfig(t, c)
	svc := c.Services["highwater"]

	// Every host highwater talks to is a service of the stack.
	hostOf := func(hostport string) string {
		h, _, err := net.SplitHostPort(hostport)
		if err != nil {
			t.Fatalf("%q: %v", hostport, err)
		}
		return h
	}
	for _, b := range cfg.Brokers {
		if _, ok := c.Services[hostOf(b)]; !ok {
			t.Errorf("broker %s is not a compose service", b)
		}
	}
	reg, err := url.Parse(cfg.Registry)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Services[reg.Hostname()]; !ok {
		t.Errorf("registry %s is not a compose service", cfg.Registry)
	}

	// The sink is the warehouse service, with its credentials.
	sink, err := url.Parse(cfg.Sink)
	if err != nil {
		t.Fatal(err)
	}
	wh, ok := c.Services[sink.Hostname()]
	if !ok || sink.Scheme != "postgres" {
		t.Fatalf("sink %s: want postgres:// on a compose service", config.RedactURL(cfg.Sink))
	}
	pw, _ := sink.User.Password()
	if sink.User.Username() != wh.Environment["POSTGRES_USER"] || pw != wh.Environment["POSTGRES_PASSWORD"] ||
		strings.TrimPrefix(sink.Path, "/") != wh.Environment["POSTGRES_DB"] {
		t.Errorf("sink %s does not match the %s service's POSTGRES_USER/PASSWORD/DB", config.RedactURL(cfg.Sink), sink.Hostname())
	}

	// The image's health check asks /healthz on HIGHWATER_METRICS_ADDR, so
	// the metrics address must come from the environment, not a flag.
	if svc.Environment["HIGHWATER_METRICS_ADDR"] == "" || slices.ContainsFunc(svc.Command, func(a string) bool { return strings.HasPrefix(a, "--metrics-addr") }) {
		t.Errorf("set the metrics address with HIGHWATER_METRICS_ADDR (the health check reads it), not --metrics-addr")
	}
	_, port, err := net.SplitHostPort(cfg.MetricsAddr)
	if err != nil {
		t.Fatalf("metrics address %q: %v", cfg.MetricsAddr, err)
	}
	if !slices.ContainsFunc(svc.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
		t.Errorf("highwater service publishes %q, not the metrics port %s", svc.Ports, port)
	}
	if !slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+filepath.Dir(cfg.BufferDir)) }) {
		t.Errorf("buffer dir %s is not on a volume (volumes %q)", cfg.BufferDir, svc.Volumes)
	}
}

func TestComposeTopicsMatchTheChangefeed(t *testing.T) {
	c := loadCompose(t)
	cfg := highwaterConfig(t, c)
	feed := parseChangefeed(t)

	if !slices.Equal(sorted(cfg.Topics), sorted(feed.topics)) {
		t.Errorf("highwater --topics %q, but the changefeed produces to %q", cfg.Topics, feed.topics)
	}
	created := strings.Fields(c.Services["redpanda-topics"].Environment["TOPICS"])
	if !slices.Equal(sorted(created), sorted(feed.topics)) {
		t.Errorf("redpanda-topics creates %q, but the changefeed produces to %q", created, feed.topics)
	}
	if !slices.Contains(cfg.Brokers, feed.broker) {
		t.Errorf("changefeed writes to %s, highwater reads %q", feed.broker, cfg.Brokers)
	}
	if got := feed.options["confluent_schema_registry"]; got != cfg.Registry {
		t.Errorf("changefeed registers schemas at %q, highwater reads %q", got, cfg.Registry)
	}
	if c.Services["cockroach-init"].Image != c.Services["cockroach"].Image || c.Services["workload"].Image != c.Services["cockroach"].Image {
		t.Errorf("the init and workload jobs should run the cockroach service's image %s", c.Services["cockroach"].Image)
	}
}

// changefeed is what deploy/cockroach/changefeed.sql creates.
type changefeed struct {
	tables  []string
	broker  string
	topics  []string
	options map[string]string
}

func parseChangefeed(t *testing.T) changefeed {
	t.Helper()
	data, err := os.ReadFile(repoFile("deploy/cockroach/changefeed.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var sql strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); !strings.HasPrefix(line, "--") {
			sql.WriteString(line + " ")
		}
	}
	m := regexp.MustCompile(`(?is)CREATE CHANGEFEED FOR (?:TABLE )?(.+?) INTO '([^']*)' WITH (.*?);`).FindStringSubmatch(sql.String())
	if m == nil {
		t.Fatalf("no CREATE CHANGEFEED ... INTO '...' WITH ...; in changefeed.sql:\n%s", data)
	}
	var f changefeed
	for _, tbl := range strings.Split(m[1], ",") {
		parts := strings.Split(strings.TrimSpace(tbl), ".")
		f.tables = append(f.tables, parts[len(parts)-1])
	}
	sinkURL, err := url.Parse(m[2])
	if err != nil || sinkURL.Scheme != "kafka" {
		t.Fatalf("changefeed sink %q: want kafka://", m[2])
	}
	f.broker = sinkURL.Host
	// The topic is topic_prefix + the table's name, escaped for Kafka
	// (docs/CHANGEFEED.md §7.2).
	for _, tbl := range f.tables {
		f.topics = append(f.topics, model.SQLNameToKafkaName(sinkURL.Query().Get("topic_prefix")+tbl))
	}
	f.options = map[string]string{}
	for _, opt := range splitOptions(m[3]) {
		k, v, _ := strings.Cut(opt, "=")
		f.options[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), "'")
	}
	return f
}

// splitOptions splits a WITH clause on the commas outside quotes.
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestChangefeedHasTheOptionsHighwaterNeeds(t *testing.T) {
	f := parseChangefeed(t)
	if len(f.tables) < 2 {
		t.Errorf("changefeed watches %q; the stack shows a feed of several tables", f.tables)
	}
	for opt, want := range map[string]string{
		"format":                   "avro",
		"updated":                  "",
		"diff":                     "",
		"resolved":                 "10s",
		"min_checkpoint_frequency": "10s",
	} {
		got, ok := f.options[opt]
		if !ok || got != want {
			t.Errorf("changefeed option %s = %q (set: %v), want %q", opt, got, ok, want)
		}
	}
	if f.options["confluent_schema_registry"] == "" {
		t.Error("changefeed has no confluent_schema_registry")
	}
	var sinkCfg struct{ RequiredAcks string }
	if err := json.Unmarshal([]byte(f.options["kafka_sink_config"]), &sinkCfg); err != nil || sinkCfg.RequiredAcks != "ALL" {
		t.Errorf("kafka_sink_config %q: want RequiredAcks ALL (%v)", f.options["kafka_sink_config"], err)
	}
	initSQL, err := os.ReadFile(repoFile("deploy/cockroach/init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(initSQL), "SET CLUSTER SETTING kv.rangefeed.enabled = true") {
		t.Error("init.sql does not enable rangefeeds")
	}
	for _, tbl := range f.tables {
		if !regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS \S*\b` + regexp.QuoteMeta(tbl) + `\s*\(`).Match(initSQL) {
			t.Errorf("init.sql does not create table %s", tbl)
		}
	}
}

func TestPrometheusAndGrafanaPointAtTheStack(t *testing.T) {
	c := loadCompose(t)
	cfg := highwaterConfig(t, c)
	_, port, _ := net.SplitHostPort(cfg.MetricsAddr)

	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "deploy/prometheus.yml", &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		// The dashboard's process panels select job="highwater".
		if sc.JobName != "highwater" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if !slices.Contains(targets, "highwater:"+port) {
		t.Errorf("prometheus job highwater scrapes %q, want highwater:%s", targets, port)
	}
	if !slices.ContainsFunc(c.Services["prometheus"].Volumes, func(v string) bool {
		return strings.HasPrefix(v, "./deploy/prometheus.yml:")
	}) {
		t.Error("the prometheus service does not mount deploy/prometheus.yml")
	}

	ds := provisionedDatasource(t)
	u, err := url.Parse(ds.URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("grafana datasource URL %q: want the prometheus service on 9090", ds.URL)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/grafana/provisioning/dashboards/highwater.yaml", &provider)
	if len(provider.Providers) != 1 {
		t.Fatalf("want one dashboard provider, got %d", len(provider.Providers))
	}
	mount := "./deploy/grafana/dashboards:" + provider.Providers[0].Options.Path
	if !slices.ContainsFunc(c.Services["grafana"].Volumes, func(v string) bool { return strings.HasPrefix(v, mount) }) {
		t.Errorf("grafana does not mount deploy/grafana/dashboards at the provider's path %s (volumes %q)",
			provider.Providers[0].Options.Path, c.Services["grafana"].Volumes)
	}
}

func readYAML(t *testing.T, p string, v any) {
	t.Helper()
	data, err := os.ReadFile(repoFile(p))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

type datasource struct {
	Name string `yaml:"name"`
	UID  string `yaml:"uid"`
	Type string `yaml:"type"`
	URL  string `yaml:"url"`
}

func provisionedDatasource(t *testing.T) datasource {
	t.Helper()
	var f struct {
		Datasources []datasource `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yaml", &f)
	if len(f.Datasources) != 1 || f.Datasources[0].Type != "prometheus" || f.Datasources[0].UID == "" {
		t.Fatalf("want one prometheus datasource with a uid, got %+v", f.Datasources)
	}
	return f.Datasources[0]
}

// panel is the part of a Grafana panel the tests read.
type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *dsRef     `json:"datasource"`
	GridPos    *gridPos   `json:"gridPos"`
	Targets    []target   `json:"targets"`
	Panels     []panel    `json:"panels"`
	FieldCfg   *fieldConf `json:"fieldConfig"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ H, W, X, Y int }

type target struct {
	Expr       string `json:"expr"`
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
}

type fieldConf struct {
	Defaults struct {
		Unit string `json:"unit"`
	} `json:"defaults"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Datasource *dsRef `json:"datasource"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(repoFile("deploy/grafana/dashboards/highwater.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("highwater.json is not valid JSON: %v", err)
	}
	return d
}

// allPanels flattens rows' nested panels.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// metricName matches the metric names in a PromQL expression: highwater's
// own and the Go and process collectors'. Label names, functions and
// Grafana variables ($__rate_interval) do not carry these prefixes.
var metricName = regexp.MustCompile(`\b(?:highwater|process|go)_[A-Za-z0-9_:]+`)

func TestDashboardUsesOnlyMetricsHighwaterExports(t *testing.T) {
	d := loadDashboard(t)
	exported := exportedMetrics(t)
	used := map[string][]string{} // metric -> panels
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				used[name] = append(used[name], p.Title)
			}
		}
	}
	for _, v := range d.Templating.List {
		for _, name := range metricName.FindAllString(v.Definition, -1) {
			used[name] = append(used[name], "variable $"+v.Name)
		}
	}
	if len(used) < 10 {
		t.Fatalf("the dashboard uses only %d metrics: %v", len(used), used)
	}
	var missing []string
	for name, where := range used {
		if !exported(name) {
			missing = append(missing, fmt.Sprintf("%s (panels %q)", name, where))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries %d metrics that highwater does not export:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	// Everything the dashboard is documented to show is on it.
	for _, want := range []string{
		"highwater_records_consumed_total", "highwater_rows_written_total", "highwater_frontier_lag_seconds",
		"highwater_partition_resolved_lag_seconds", "highwater_partition_applied_lag_seconds",
		"highwater_flush_duration_seconds_bucket", "highwater_buffer_events", "highwater_buffer_bytes",
		"highwater_fetch_paused", "highwater_duplicates_dropped_total", "highwater_decode_errors_total",
		"highwater_dead_letters_total", "highwater_rebalances_total", "process_resident_memory_bytes",
		"process_cpu_seconds_total",
	} {
		if _, ok := used[want]; !ok {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// exportedMetrics reports whether highwater's registry (the one `highwater
// run` serves on /metrics) exports a metric name. A name counts when a
// scrape returns it or when a registered collector describes it: labelled
// metrics (per partition, per table) only appear in a scrape once they have
// a child, but their descriptors are registered from the start. For
// histograms, name_bucket, name_sum and name_count count as name.
func exportedMetrics(t *testing.T) func(string) bool {
	t.Helper()
	return exportedBy(t, metrics.NewRegistry(fixedStats{processor.Stats{Consumed: 10, RowsApplied: 5, Windows: 1, Partitions: 2}}))
}

// exportedBy is exportedMetrics for any registry.
func exportedBy(t *testing.T, reg *prometheus.Registry) func(string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	gathered := map[string]bool{}
	for _, mf := range mfs {
		gathered[mf.GetName()] = true
	}
	described := func(name string) bool {
		// Registering a second descriptor under a name that a collector
		// already describes fails (different help string); under a new
		// name it succeeds.
		probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "deploy test probe: is this name taken?"})
		if err := reg.Register(probe); err != nil {
			return true
		}
		reg.Unregister(probe)
		return false
	}
	has := func(name string) bool { return gathered[name] || described(name) }
	return func(name string) bool {
		if has(name) {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && has(base) {
				return true
			}
		}
		return false
	}
}

// fixedStats is a metrics source that always reports the same figures.
type fixedStats struct{ s processor.Stats }

func (f fixedStats) Stats() processor.Stats { return f.s }

func TestExportedMetricsTellsMissingNames(t *testing.T) {
	// The dashboard test is only as good as this check: it must reject a
	// name nobody exports and accept labelled (even before their first
	// child), histogram and collector names.
	exported := exportedMetrics(t)
	for name, want := range map[string]bool{
		"highwater_records_consumed_total":    true,
		"highwater_frontier_lag_seconds":      true,
		"process_resident_memory_bytes":       true,
		"go_goroutines":                       true,
		"highwater_no_such_metric_total":      false,
		"highwater_records_consumed_total_xx": false,
		"process_no_such_bucket":              false,
	} {
		if got := exported(name); got != want {
			t.Errorf("exported(%s) = %v, want %v", name, got, want)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "t_lag_seconds", Help: "h"}, []string{"topic", "partition"}),
		prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_flush_seconds", Help: "h"}),
	)
	exported = exportedBy(t, reg)
	for name, want := range map[string]bool{
		"t_lag_seconds":          true, // no child yet: not in a scrape, but described
		"t_flush_seconds_bucket": true,
		"t_flush_seconds_count":  true,
		"t_flush_seconds_sum":    true,
		"t_lag_seconds_bucket":   true, // the suffix rule is lenient; the name exists
		"t_flush":                false,
		"t_other_seconds":        false,
	} {
		if got := exported(name); got != want {
			t.Errorf("on a test registry, exported(%s) = %v, want %v", name, got, want)
		}
	}
	// The probe leaves the registry as it found it.
	if exported("t_other_seconds") {
		t.Error("a second look at t_other_seconds found it: the probe stayed registered")
	}
}

func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	ds := provisionedDatasource(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both needed for a stable URL", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana schema (>= 36)", d.SchemaVersion)
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != ds.UID {
			t.Errorf("panel %q: datasource %+v, want uid %q (provisioned)", p.Title, p.Datasource, ds.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty query or refId", p.Title)
			}
			if tg.Datasource != nil && tg.Datasource.UID != ds.UID {
				t.Errorf("panel %q: query datasource uid %q, want %q", p.Title, tg.Datasource.UID, ds.UID)
			}
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced brackets in %s", p.Title, tg.Expr)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Datasource == nil || v.Datasource.UID != ds.UID {
			t.Errorf("variable %s: datasource %+v, want uid %q", v.Name, v.Datasource, ds.UID)
		}
	}
	if queries < 15 {
		t.Errorf("only %d queries on the dashboard", queries)
	}
}

func TestExamplesAreValidConfigurations(t *testing.T) {
	// Example paths (CA, password files) are relative to the repository
	// root, where `make check-deploy` runs `highwater config check`.
	t.Chdir(root)
	examples, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 4 {
		t.Fatalf("want the duckdb, postgres, files/s3 and kafka TLS/SASL examples, found %q", examples)
	}
	sinks := map[string]bool{}
	for _, f := range examples {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// No environment: the file alone must be a valid configuration.
			cfg, err := config.Load([]string{"--config", f}, func(string) string { return "" })
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			u, _ := url.Parse(cfg.Sink)
			sinks[u.Scheme] = true
			// config check does not look inside a sink URL; the files
			// writer's own parser does, without connecting.
			if u.Scheme == "file" || u.Scheme == "s3" {
				if _, err := files.ParseURL(cfg.Sink); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			data, _ := os.ReadFile(f)
			if !strings.HasPrefix(string(data), "# highwater run --config "+f) {
				t.Errorf("%s should start with the command that uses it: # highwater run --config %s", f, f)
			}
		})
	}
	for _, s := range []string{"duckdb", "postgres", "s3"} {
		if !sinks[s] {
			t.Errorf("no example writes to a %s:// sink", s)
		}
	}
}

func TestDockerfileMatchesTheBinary(t *testing.T) {
	data, err := os.ReadFile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	known := knownEnv(t)
	// ENV lines may continue over several lines with backslashes.
	joined := strings.ReplaceAll(df, "\\\n", " ")
	env := map[string]string{}
	for _, line := range strings.Split(joined, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
				if strings.HasPrefix(k, "HIGHWATER_") && !known[k] {
					t.Errorf("Dockerfile sets %s, which highwater does not read", k)
				}
			}
		}
	}
	_, port, err := net.SplitHostPort(env["HIGHWATER_METRICS_ADDR"])
	if err != nil {
		t.Fatalf("Dockerfile HIGHWATER_METRICS_ADDR %q: %v", env["HIGHWATER_METRICS_ADDR"], err)
	}
	for _, want := range []string{
		"CGO_ENABLED=1",                 // DuckDB needs cgo
		"USER 65532",                    // not root
		"EXPOSE " + port,                // the metrics port
		`CMD ["highwater", "probe"]`,    // the health check needs no curl
		`ENTRYPOINT ["highwater"]`,      // docker run image <command>
		"FROM debian:bookworm-slim",     // glibc, as DuckDB needs
		"FROM golang:1.26-bookworm AS ", // same Debian as the runtime
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
