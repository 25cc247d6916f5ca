// Package natsserver runs the embedded nats-server with JetStream that
// promemoria uses when no external NATS URL is configured.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	// Listen is host:port for clients; port 0 picks a free one; "" means
	// in-process connections only (no TCP listener).
	Listen string
	// DataDir is where JetStream keeps its files.
	DataDir string
	// ConfigFile, if set, is a nats-server configuration file loaded first;
	// Listen and DataDir then override its values when set.
	ConfigFile string
	// MaxMemory and MaxStore bound JetStream's memory and file storage
	// (bytes; 0 lets the server choose).
	MaxMemory int64
	MaxStore  int64
	// SyncAlways makes JetStream fsync every write.
	SyncAlways bool
	// ServerName names the server in logs and cluster metadata.
	ServerName string
	// ReadyTimeout bounds how long Start waits for the server.
	ReadyTimeout time.Duration
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server config %s: %w", o.ConfigFile, err)
		}
		opts = fo
	}
	opts.JetStream = true
	opts.NoSigs = true
	if o.ServerName != "" {
		opts.ServerName = o.ServerName
	}
	if o.DataDir != "" {
		opts.StoreDir = o.DataDir
	}
	if opts.StoreDir == "" {
		return nil, errors.New("embedded nats-server: a data directory is required (--data-dir)")
	}
	if o.MaxMemory != 0 {
		opts.JetStreamMaxMemory = o.MaxMemory
	}
	if o.MaxStore != 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	if o.SyncAlways {
		opts.SyncAlways = true
	}
	switch {
	case o.Listen == "" && o.ConfigFile == "":
		opts.DontListen = true
	case o.Listen != "":
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server listen address %q: want host:port: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("embedded nats-server listen address %q: bad port", o.Listen)
		}
		opts.Host, opts.Port = host, p
		if p == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 30 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats-server not ready after %s (is %s already in use?)", wait, o.Listen)
	}
	return &Server{Server: ns}, nil
}

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
