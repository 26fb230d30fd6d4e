// Package devstack starts the in-process stand-ins for the services around
// highwater: a Kafka broker (franz-go's kfake, real wire protocol) and a
// Confluent Schema Registry (srfake). The demo, the benchmarks and the
// end-to-end tests run on it; production uses real Kafka and a registry.
//
// For fault tests it can restart the broker on the same address (with a
// DataDir the log survives, as with a real broker), and Proxy puts a TCP
// hop in front of either service that can be cut and restored, so that a
// client sees the service become unreachable while it keeps running.
package devstack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
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
	// Cluster is the running broker. RestartBroker replaces it; read it
	// only while no restart runs.
	Cluster  *kfake.Cluster
	Registry *srfake.Registry

	opts  Options
	mu    sync.Mutex
	addrs []string
}

// Start starts a broker and a registry.
func Start(opts Options) (*Stack, error) {
	c, err := startBroker(opts)
	if err != nil {
		return nil, err
	}
	return &Stack{Cluster: c, Registry: srfake.New(), opts: opts, addrs: c.ListenAddrs()}, nil
}

func startBroker(opts Options) (*kfake.Cluster, error) {
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
	return c, nil
}

// Brokers returns the broker addresses. They stay the same across
// RestartBroker.
func (s *Stack) Brokers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// RegistryURL returns the registry's base URL.
func (s *Stack) RegistryURL() string { return s.Registry.URL() }

// RestartBroker stops the broker, keeps it down for down, and starts it
// again on the same address. With Options.DataDir the topics, their
// records and the committed offsets survive, as with a real broker; without
// one the restarted broker is empty. Clients see their connections drop and
// reconnect.
func (s *Stack) RestartBroker(down time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.addrs) != 1 {
		return fmt.Errorf("restart broker: %d brokers, want 1", len(s.addrs))
	}
	_, portText, err := net.SplitHostPort(s.addrs[0])
	if err != nil {
		return fmt.Errorf("restart broker: address %q: %w", s.addrs[0], err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("restart broker: port %q: %w", portText, err)
	}
	s.Cluster.Close()
	time.Sleep(down)
	opts := s.opts
	opts.Port = port
	// The port was just released; another process could take it in the
	// meantime, which is unlikely but would fail the restart clearly.
	var c *kfake.Cluster
	for attempt := 0; ; attempt++ {
		c, err = startBroker(opts)
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart broker on port %d: %w", port, err)
	}
	s.Cluster = c
	return nil
}

// Close stops both services.
func (s *Stack) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Cluster.Close()
	s.Registry.Close()
}

// Proxy forwards TCP connections from its own address to a target: put it
// between a client and a service to make the service unreachable (Cut) and
// reachable again (Restore) while the service itself keeps running.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	done  bool
}

// NewProxy listens on a free local port and forwards to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: make(map[net.Conn]struct{})}
	p.serve(ln)
	return p, nil
}

// Addr returns the proxy's address (host:port); clients connect here.
func (p *Proxy) Addr() string { return p.addr }

// Cut makes the target unreachable through the proxy: open connections are
// closed and new ones are refused until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Restore makes the target reachable again on the same address.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.done {
		return nil
	}
	var ln net.Listener
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("proxy to %s: listen again on %s: %w", p.target, p.addr, err)
	}
	p.serveLocked(ln)
	return nil
}

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

// pipe copies both ways between the client c and a new connection to the
// target, until either side closes or the proxy is cut.
func (p *Proxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		// Cut while dialing.
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
