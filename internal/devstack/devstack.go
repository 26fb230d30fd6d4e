// Package devstack starts the in-process stand-ins for the services around
// highwater: a Kafka broker (franz-go's kfake, real wire protocol) and a
// Confluent Schema Registry (srfake). The demo, the benchmarks and the
// end-to-end tests run on it; production uses real Kafka and a registry.
package devstack

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Options configure a Stack.
type Options struct {
	// DataDir persists the broker's logs on disk. Empty keeps everything
	// in memory.
	DataDir string
	// Port fixes the broker's port (0 picks a free one).
	Port int
}

// Stack is a running broker and registry.
type Stack struct {
	Cluster  *kfake.Cluster
	Registry *srfake.Registry
}

// Start starts a broker and a registry.
func Start(opts Options) (*Stack, error) {
	// A 1s minimum session timeout (Kafka's is 6s) lets tests and the demo
	// choose short ones, so that a killed member's partitions move quickly.
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(opts.Port), kfake.GroupMinSessionTimeout(time.Second)}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake broker: %w", err)
	}
	return &Stack{Cluster: c, Registry: srfake.New()}, nil
}

// Brokers returns the broker addresses.
func (s *Stack) Brokers() []string { return s.Cluster.ListenAddrs() }

// RegistryURL returns the registry's base URL.
func (s *Stack) RegistryURL() string { return s.Registry.URL() }

// Close stops both services.
func (s *Stack) Close() {
	s.Cluster.Close()
	s.Registry.Close()
}
