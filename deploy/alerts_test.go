package deploy

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// alertRules is the part of deploy/alerts.yml the tests read.
type alertRules struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The alerts are issue 13's: the watermark's age, the changefeed stalled, one
// partition stuck while others move, dead letters and skipped records,
// fetching paused on the disk budget, no member ready.
var wantAlerts = []string{
	"HighwaterBehind", "HighwaterChangefeedStalled", "HighwaterPartitionStuck",
	"HighwaterDeadLetters", "HighwaterRecordsSkipped", "HighwaterRetentionGap", "HighwaterFetchPaused", "HighwaterNoMemberReady",
}

func TestAlertRulesUseOnlyMetricsHighwaterExports(t *testing.T) {
	var rules alertRules
	readYAML(t, "deploy/alerts.yml", &rules)
	exported := exportedMetrics(t)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			used := metricName.FindAllString(r.Expr, -1)
			if len(used) == 0 {
				t.Errorf("alert %s reads no highwater metric: %q", r.Alert, r.Expr)
			}
			for _, name := range used {
				if !exported(name) {
					t.Errorf("alert %s queries %s, which highwater does not export", r.Alert, name)
				}
			}
		}
	}
	for _, want := range wantAlerts {
		if !slices.Contains(names, want) {
			t.Errorf("deploy/alerts.yml has no alert %s (has %q)", want, names)
		}
	}
}

// TestAlertRulesPassPromtool checks the rules with Prometheus's own tool and
// runs their unit tests (deploy/alerts_test.yml), which fire each alert on
// the failure it names and keep it quiet on a healthy feed. promtool comes
// with Debian's prometheus package, which .ci/run installs.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does)")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "." // deploy/
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestComposePrometheusLoadsTheAlerts(t *testing.T) {
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, "deploy/prometheus.yml", &prom)
	if !slices.Contains(prom.RuleFiles, "alerts.yml") {
		t.Errorf("deploy/prometheus.yml rule_files = %q, want alerts.yml", prom.RuleFiles)
	}
	c := loadCompose(t)
	if !slices.Contains(c.Services["prometheus"].Volumes, "./deploy/alerts.yml:/etc/prometheus/alerts.yml:ro") {
		t.Errorf("the prometheus service does not mount deploy/alerts.yml beside its configuration (volumes %q)",
			c.Services["prometheus"].Volumes)
	}
}
