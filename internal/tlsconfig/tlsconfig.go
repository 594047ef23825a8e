// Package tlsconfig loads the TLS configurations of servers and clients from
// PEM files (certificate, key, CA) and keeps them fresh: the files are
// re-read when they change, so a certificate can be rotated by replacing
// its files, without a restart. It also owns the rule for plaintext
// (--insecure): allowed on loopback, refused elsewhere unless asked for.
//
// Rotation: every new TLS handshake stats the files (cheap) and re-reads
// them when their modification time, size or inode changed. A pair that
// does not load (a rotation caught half-written: new certificate, old key)
// keeps the last good one in use and is tried again at the next handshake.
// Connections already open keep the certificate they were made with.
// What rotates: the server's certificate and key, the CA that verifies
// client certificates (server side), and the client's certificate and key.
// The CA a client uses to verify its server rotates with ClientCredentials
// (gRPC clients: a fresh configuration per handshake); Client's *tls.Config
// reads it once, at start.
package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Files names PEM files. CA is the authority that signs the peer's
// certificates: for a server, setting it verifies client certificates
// (mutual TLS); for a client, it verifies the server (system roots when
// empty).
type Files struct {
	Cert string
	Key  string
	CA   string
}

// Empty reports whether no file is named.
func (f Files) Empty() bool { return f.Cert == "" && f.Key == "" && f.CA == "" }

// Options refine Server and Client. The zero value is the default.
type Options struct {
	// OptionalClientCert (servers with a CA) verifies a client certificate
	// when one is presented but lets clients without one finish the
	// handshake (tls.VerifyClientCertIfGiven), so that an interceptor can
	// keep some methods (health) open and demand a certificate for the
	// rest. Default false: tls.RequireAndVerifyClientCert.
	OptionalClientCert bool
	// Logger hears about reloads and reload failures (file names only,
	// never key material). Default: discard.
	Logger *slog.Logger
}

// Server builds a server configuration that re-reads its files on change:
// Cert and Key are required; with CA, client certificates are verified
// against it and required (see Options.OptionalClientCert).
func Server(f Files, opts ...Options) (*tls.Config, error) {
	o := pick(opts)
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key are both required (or --insecure for plaintext)")
	}
	pair, err := newPairFile(f.Cert, f.Key, o.Logger)
	if err != nil {
		return nil, err
	}
	var ca *caFile
	if f.CA != "" {
		if ca, err = newCAFile(f.CA, o.Logger); err != nil {
			return nil, err
		}
	}
	clientAuth := tls.NoClientCert
	if ca != nil {
		clientAuth = tls.RequireAndVerifyClientCert
		if o.OptionalClientCert {
			clientAuth = tls.VerifyClientCertIfGiven
		}
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: clientAuth}
	c := base.Clone()
	// GetConfigForClient runs per handshake: it hands out the current
	// certificate and client CA pool, both re-read when their files changed.
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert := pair.get()
		cc := base.Clone()
		cc.Certificates = []tls.Certificate{*cert}
		if ca != nil {
			cc.ClientCAs = ca.get()
		}
		return cc, nil
	}
	// Certificates is set too so that code inspecting the config (and
	// gRPC's ALPN handling, which clones it) sees a usable configuration.
	c.Certificates = []tls.Certificate{*pair.get()}
	if ca != nil {
		c.ClientCAs = ca.get()
	}
	return c, nil
}

// Client builds a client configuration: CA verifies the server (system
// roots when empty; read once); Cert and Key, when given, are the client's
// identity, re-read on change.
func Client(f Files, opts ...Options) (*tls.Config, error) {
	o := pick(opts)
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		ca, err := newCAFile(f.CA, o.Logger)
		if err != nil {
			return nil, err
		}
		c.RootCAs = ca.get()
	}
	if f.Cert != "" || f.Key != "" {
		if f.Cert == "" || f.Key == "" {
			return nil, errors.New("tls client: --tls-cert and --tls-key go together")
		}
		pair, err := newPairFile(f.Cert, f.Key, o.Logger)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return pair.get(), nil
		}
	}
	return c, nil
}

// ClientCredentials is Client for gRPC, with the CA rotating too: every
// handshake gets a configuration with the CA and the client certificate as
// their files are now, verified the standard way (server name included).
func ClientCredentials(f Files, opts ...Options) (credentials.TransportCredentials, error) {
	base, err := Client(Files{Cert: f.Cert, Key: f.Key}, opts...)
	if err != nil {
		return nil, err
	}
	r := &reloadingCreds{base: base}
	if f.CA != "" {
		if r.ca, err = newCAFile(f.CA, pick(opts).Logger); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// reloadingCreds hands each handshake to gRPC's TLS credentials built on
// the configuration of the moment.
type reloadingCreds struct {
	base *tls.Config
	ca   *caFile // nil: the system roots
}

func (r *reloadingCreds) current() credentials.TransportCredentials {
	c := r.base.Clone()
	if r.ca != nil {
		c.RootCAs = r.ca.get()
	}
	return credentials.NewTLS(c)
}

func (r *reloadingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return r.current().ClientHandshake(ctx, authority, raw)
}

func (r *reloadingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsconfig: client credentials cannot serve")
}

func (r *reloadingCreds) Info() credentials.ProtocolInfo { return credentials.NewTLS(r.base).Info() }

func (r *reloadingCreds) Clone() credentials.TransportCredentials {
	return &reloadingCreds{base: r.base.Clone(), ca: r.ca}
}

// OverrideServerName is deprecated in gRPC and unused here.
func (r *reloadingCreds) OverrideServerName(string) error {
	return errors.New("tlsconfig: OverrideServerName is not supported")
}

func pick(opts []Options) Options {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// stamp identifies one version of a file.
type stamp struct {
	info os.FileInfo
}

func (s stamp) same(o os.FileInfo) bool {
	return s.info != nil && o != nil && os.SameFile(s.info, o) &&
		s.info.ModTime().Equal(o.ModTime()) && s.info.Size() == o.Size()
}

// watched re-reads a set of files when any of them changed since the last
// good load. load parses the files; on error the previous value stays.
type watched[T any] struct {
	names  []string
	load   func() (T, error)
	logger *slog.Logger

	mu     sync.Mutex
	stamps []stamp
	val    T
	failed time.Time // last reload failure logged, to log it once per change
}

func newWatched[T any](names []string, load func() (T, error), logger *slog.Logger) (*watched[T], error) {
	w := &watched[T]{names: names, load: load, logger: logger}
	st, err := w.stat()
	if err != nil {
		return nil, err
	}
	if w.val, err = load(); err != nil {
		return nil, err
	}
	w.stamps = st
	return w, nil
}

func (w *watched[T]) stat() ([]stamp, error) {
	st := make([]stamp, len(w.names))
	for i, n := range w.names {
		fi, err := os.Stat(n)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		st[i] = stamp{fi}
	}
	return st, nil
}

// get returns the current value, reloading it first when a file changed.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, err := w.stat()
	if err != nil {
		// A file briefly missing during a rotation: keep serving the old one.
		return w.val
	}
	changed := false
	for i := range st {
		if !w.stamps[i].same(st[i].info) {
			changed = true
		}
	}
	if !changed {
		return w.val
	}
	v, err := w.load()
	if err != nil {
		// Half-written rotation, most likely: keep the last good value and
		// try again at the next handshake. Log once per change.
		newest := time.Time{}
		for _, s := range st {
			if s.info.ModTime().After(newest) {
				newest = s.info.ModTime()
			}
		}
		if !newest.Equal(w.failed) {
			w.failed = newest
			w.logger.Warn("tls: changed files do not load; keeping the previous ones", "files", w.names, "error", err)
		}
		return w.val
	}
	w.val, w.stamps = v, st
	w.logger.Info("tls: reloaded changed files", "files", w.names)
	return w.val
}

type pairFile = watched[*tls.Certificate]

func newPairFile(certFile, keyFile string, logger *slog.Logger) (*pairFile, error) {
	return newWatched([]string{certFile, keyFile}, func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			// The error of LoadX509KeyPair names no key material.
			return nil, fmt.Errorf("tls cert %s / key %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, logger)
}

type caFile = watched[*x509.CertPool]

func newCAFile(name string, logger *slog.Logger) (*caFile, error) {
	return newWatched([]string{name}, func() (*x509.CertPool, error) {
		pem, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate found", name)
		}
		return p, nil
	}, logger)
}

// IsLoopback reports whether a listen or dial address ("host:port") stays
// on this machine: "localhost" or a loopback IP. An empty host (":7443")
// listens on every interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckInsecure applies the plaintext rule to the addresses of a service
// run with --insecure: every one must be loopback unless allowRemote
// (--allow-insecure-remote). flag names the address's flag in the error.
func CheckInsecure(allowRemote bool, addrs map[string]string) error {
	if allowRemote {
		return nil
	}
	for _, flag := range slices.Sorted(maps.Keys(addrs)) {
		if addr := addrs[flag]; addr != "" && !IsLoopback(addr) {
			return fmt.Errorf("config: Insecure (--insecure) is allowed on loopback addresses only, but %s is %q; "+
				"use TLS, or add --allow-insecure-remote if the network itself is trusted", flag, addr)
		}
	}
	return nil
}
