package config

import (
	"fmt"
	"strings"
	"time"
)

// YAMLKey is the YAML key of a flag name: buffer-dir -> buffer_dir.
func YAMLKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// Reference returns the Markdown table of every setting: YAML key, flag,
// environment variable, default and meaning. docs/CONFIGURATION.md embeds
// it, and a test keeps the two equal.
func Reference() string {
	def := Defaults()
	var b strings.Builder
	b.WriteString("| YAML key | flag | env | default | meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| — | `--config` | `HIGHWATER_CONFIG` | | YAML configuration file |\n")
	for _, f := range def.fields() {
		d := formatDefault(f.ptr)
		if d != "" {
			d = "`" + d + "`"
		}
		usage := f.usage
		if isSecret(f.flag) {
			usage += "; redacted in logs and `config check`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | `%s` | %s | %s |\n", YAMLKey(f.flag), f.flag, EnvName(f.flag), d, mdEscape.Replace(usage))
	}
	return b.String()
}

// mdEscape keeps usage text such as "<table>_changes" and "a | b" literal
// in a Markdown table cell.
var mdEscape = strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;")

func formatDefault(ptr any) string {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *bool:
		if *p {
			return "true"
		}
		return "false"
	case *time.Duration:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	case *FeedList:
		return p.String()
	}
	return ""
}
