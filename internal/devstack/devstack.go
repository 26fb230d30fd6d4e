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
	// DataDir persists the broker's logs, so that it survives a restart
	// (Stack.RestartBroker). Empty keeps everything in memory.
	DataDir string
	// Port fixes the broker's port (0 picks a free one).
	Port int
}

// Stack is a running broker and registry.
type Stack struct {
	opts     Options
	Cluster  *kfake.Cluster
	Registry *srfake.Registry
}

// Start starts a broker and a registry.
func Start(opts Options) (*Stack, error) {
	s := &Stack{opts: opts, Registry: srfake.New()}
	if err := s.startBroker(); err != nil {
		s.Registry.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) startBroker() error {
	// A 1s minimum session timeout (Kafka's is 6s) lets tests and the demo
	// choose short ones, so that a killed member's partitions move quickly.
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(s.opts.Port), kfake.GroupMinSessionTimeout(time.Second)}
	if s.opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(s.opts.DataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("start kfake broker: %w", err)
	}
	s.Cluster = c
	return nil
}

// Brokers returns the broker addresses.
func (s *Stack) Brokers() []string { return s.Cluster.ListenAddrs() }

// RegistryURL returns the registry's base URL.
func (s *Stack) RegistryURL() string { return s.Registry.URL() }

// RestartBroker stops the broker and starts it again on the same port with
// the same data directory: a broker restart as clients see it.
func (s *Stack) RestartBroker() error {
	if s.opts.DataDir == "" {
		return fmt.Errorf("restart broker: the stack has no DataDir, the data would be lost")
	}
	addr := s.Cluster.ListenAddrs()[0]
	var port int
	if _, err := fmt.Sscanf(addr[lastColon(addr)+1:], "%d", &port); err != nil {
		return fmt.Errorf("restart broker: port of %q: %w", addr, err)
	}
	s.Cluster.Close()
	s.opts.Port = port
	return s.startBroker()
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

// Close stops both services.
func (s *Stack) Close() {
	s.Cluster.Close()
	s.Registry.Close()
}
