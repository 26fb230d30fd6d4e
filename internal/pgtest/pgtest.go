// Package pgtest starts a throwaway PostgreSQL server for tests: a fresh
// cluster (initdb) in a temporary directory, a postgres process on a free
// loopback port with trust authentication, stopped and removed when the test
// or test binary ends.
//
// The binaries come from $HIGHWATER_PG_BIN, else /usr/lib/postgresql/15/bin,
// else `pg_config --bindir`, else the directory of initdb on $PATH. Missing
// binaries are a test failure, not a skip: CI must run these tests.
//
// PostgreSQL refuses to run as root, so when the test runs as root the
// cluster is owned by, and the server runs as, the "postgres" user.
//
// One server per test package (StartMain in TestMain) and one database per
// test (CreateDB) keeps test packages fast.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvBinDir names the environment variable that overrides the directory of
// the PostgreSQL binaries (initdb, postgres).
const EnvBinDir = "HIGHWATER_PG_BIN"

// Superuser is the role that owns the cluster; URL connects as it.
const Superuser = "postgres"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	binDir  string
	dir     string // temp root: data/, socket, log
	port    int
	cred    *syscall.Credential
	uid     int
	gid     int
	dbCount atomic.Int64

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start starts a server for one test (or benchmark) and stops and removes it
// when the test ends. It fails the test if the server cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop, err := StartMain()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(stop)
	return s
}

// StartMain starts a server for use from TestMain. The returned function
// stops the server and removes its files; call it before os.Exit.
func StartMain() (*Server, func(), error) {
	bin, err := BinDir()
	if err != nil {
		return nil, nil, err
	}
	s := &Server{binDir: bin, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(Superuser)
		if err != nil {
			return nil, nil, fmt.Errorf("running as root, PostgreSQL must run as user %q: %w", Superuser, err)
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}
	}
	s.dir, err = os.MkdirTemp("", "highwater-pgtest-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating server directory: %w", err)
	}
	stop := func() {
		_ = s.Stop()
		_ = os.RemoveAll(s.dir)
	}
	if err := s.initdb(); err != nil {
		stop()
		return nil, nil, err
	}
	// A port found free may be taken by the time postgres binds it; try a
	// few.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			stop()
			return nil, nil, err
		}
		if err = s.start(); err == nil {
			break
		}
		if attempt == 4 {
			stop()
			return nil, nil, err
		}
	}
	return s, stop, nil
}

// BinDir returns the directory of the PostgreSQL server binaries, or an
// error saying how to provide them.
func BinDir() (string, error) {
	has := func(dir string) bool {
		_, err1 := os.Stat(filepath.Join(dir, "initdb"))
		_, err2 := os.Stat(filepath.Join(dir, "postgres"))
		return err1 == nil && err2 == nil
	}
	if d := os.Getenv(EnvBinDir); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("$%s=%s holds no initdb and postgres binaries", EnvBinDir, d)
	}
	if d := "/usr/lib/postgresql/15/bin"; has(d) {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL 15 " +
		"(apt-get install postgresql-15) or set $" + EnvBinDir + " to their directory")
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// command builds a command that runs as the cluster owner.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) initdb() error {
	if s.cred != nil {
		if err := os.Chown(s.dir, s.uid, s.gid); err != nil {
			return fmt.Errorf("handing %s to user %s: %w", s.dir, Superuser, err)
		}
	}
	cmd := s.command("initdb", "-D", s.dataDir(), "-U", Superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", s.dataDir(), err, out.String())
	}
	// Only loopback TCP and the private socket, no password.
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(s.dataDir(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("writing pg_hba.conf: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(filepath.Join(s.dataDir(), "pg_hba.conf"), s.uid, s.gid); err != nil {
			return fmt.Errorf("chown pg_hba.conf: %w", err)
		}
	}
	return nil
}

// start runs postgres on s.port and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("server already running")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening server log: %w", err)
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.dataDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=60",
		"-c", "logging_collector=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// If the test binary dies (a panic, a go test timeout), the server must
	// not outlive it. Pdeathsig fires when the forking OS thread exits, so
	// the goroutine below forks from a locked thread and keeps it until
	// postgres has exited.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.proc, s.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			s.proc, s.done = nil, nil
			return fmt.Errorf("postgres exited during startup: %s", s.tailLog())
		case <-ctx.Done():
			s.stopLocked()
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, s.tailLog())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) tailLog() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop shuts the server down (fast shutdown: open sessions are disconnected
// and their transactions rolled back). The data directory is kept, so
// Restart can bring it back. Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.proc == nil {
		return nil
	}
	proc, done := s.proc, s.done
	s.proc, s.done = nil, nil
	_ = proc.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = proc.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = proc.Process.Kill()
	<-done
	return errors.New("postgres did not stop on SIGINT or SIGQUIT; killed")
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start()
}

// Port returns the TCP port the server listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

// URL returns the connection URL of database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.port, db)
}

// URLAs returns the connection URL of database db as role user (trust
// authentication: no password).
func (s *Server) URLAs(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, s.port, db)
}

// Exec runs SQL statements as the superuser in database db.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("executing %q: %w", sql, err)
	}
	return nil
}

// NewDB creates a fresh, empty database and returns its name.
func (s *Server) NewDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("hw_test_%d", s.dbCount.Add(1))
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return name, nil
}

// CreateDB creates a fresh database for one test and returns its URL.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	name, err := s.NewDB(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.URL(name)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
