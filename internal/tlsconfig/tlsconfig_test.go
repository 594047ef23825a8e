package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"

	"github.com/chasqui/chasqui/internal/certs"
	"github.com/chasqui/chasqui/internal/certs/certstest"
	"github.com/chasqui/chasqui/internal/tlsconfig"
)

type site struct{ *certstest.Site }

func newSite(t *testing.T) *site { return &site{certstest.NewSite(t)} }

func (s *site) issueEdge(t *testing.T, name, id string) *x509.Certificate {
	t.Helper()
	return s.Edge(t, name, id)
}

func (s *site) files(name string) tlsconfig.Files {
	return tlsconfig.Files{Cert: filepath.Join(s.Dir, name+".pem"), Key: filepath.Join(s.Dir, name+"-key.pem"), CA: filepath.Join(s.Dir, "ca.pem")}
}

// handshake makes one new connection and returns the certificates each
// side saw of the other.
func handshake(t *testing.T, lis net.Listener, client *tls.Config) (serverSaw, clientSaw *x509.Certificate) {
	t.Helper()
	got := make(chan *x509.Certificate, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil || len(tc.ConnectionState().PeerCertificates) == 0 {
			got <- nil
			return
		}
		got <- tc.ConnectionState().PeerCertificates[0]
	}()
	conn, err := tls.Dial("tcp", lis.Addr().String(), client)
	require.NoError(t, err)
	clientSaw = conn.ConnectionState().PeerCertificates[0]
	serverSaw = <-got
	_ = conn.Close()
	return serverSaw, clientSaw
}

func TestRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv1 := s.issueEdge(t, "server", "srv")
	cli1 := s.issueEdge(t, "client", "cli")
	serverCfg, err := tlsconfig.Server(s.files("server"))
	require.NoError(t, err)
	clientCfg, err := tlsconfig.Client(s.files("client"))
	require.NoError(t, err)
	clientCfg.ServerName = "127.0.0.1"
	lis, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })

	serverSaw, clientSaw := handshake(t, lis, clientCfg)
	require.Equal(t, srv1.SerialNumber, clientSaw.SerialNumber)
	require.Equal(t, cli1.SerialNumber, serverSaw.SerialNumber)

	// Replace both pairs on disk: the next connections see the new ones,
	// on the same listener and the same client configuration.
	srv2 := s.issueEdge(t, "server", "srv")
	cli2 := s.issueEdge(t, "client", "cli")
	serverSaw, clientSaw = handshake(t, lis, clientCfg)
	require.Equal(t, srv2.SerialNumber, clientSaw.SerialNumber, "server certificate rotated")
	require.Equal(t, cli2.SerialNumber, serverSaw.SerialNumber, "client certificate rotated")

	// A half-written rotation (certificate without its key) keeps the last
	// good pair in service.
	garbage := filepath.Join(s.Dir, "server-key.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key"), 0o600))
	_, clientSaw = handshake(t, lis, clientCfg)
	require.Equal(t, srv2.SerialNumber, clientSaw.SerialNumber)
}

func TestServerRequiresClientCertUnlessOptional(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.issueEdge(t, "server", "srv")
	noCert := &tls.Config{ServerName: "127.0.0.1", RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	noCert.RootCAs.AddCert(s.CA.Cert)
	for _, optional := range []bool{false, true} {
		cfg, err := tlsconfig.Server(s.files("server"), tlsconfig.Options{OptionalClientCert: optional})
		require.NoError(t, err)
		lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			c, err := lis.Accept()
			if err == nil {
				err = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}
			errc <- err
		}()
		conn, err := tls.Dial("tcp", lis.Addr().String(), noCert)
		if err == nil {
			// TLS 1.3: the client learns of the refusal on its first read.
			_, err = conn.Read(make([]byte, 1))
			_ = conn.Close()
		}
		serr := <-errc
		_ = lis.Close()
		if optional {
			require.NoError(t, serr, "optional: handshake without a client certificate completes")
		} else {
			require.Error(t, serr, "required: handshake without a client certificate fails")
		}
	}
}

func TestCheckInsecure(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:7443": true, "localhost:1": true, "[::1]:7443": true, "127.0.0.2:0": true,
		":7443": false, "0.0.0.0:7443": false, "10.0.0.1:7443": false, "central.example.org:7443": false,
	} {
		err := tlsconfig.CheckInsecure(false, map[string]string{"--grpc-addr": addr})
		if ok {
			require.NoError(t, err, addr)
		} else {
			require.ErrorContains(t, err, "--grpc-addr", addr)
			require.NoError(t, tlsconfig.CheckInsecure(true, map[string]string{"--grpc-addr": addr}))
		}
	}
}

// A gRPC client's CA rotates too (ClientCredentials): after the site moves
// to a new CA (its certificate replaced on disk, the server re-issued by
// it), new handshakes verify against the new CA, with no new credentials;
// the *tls.Config of Client, read once, still refuses the new server.
func TestClientCredentialsFollowCARotation(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.issueEdge(t, "server", "srv")
	f := s.files("server")
	serverCfg, err := tlsconfig.Server(tlsconfig.Files{Cert: f.Cert, Key: f.Key})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	serverCreds := credentials.NewTLS(serverCfg) // as a gRPC server does (ALPN h2)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				if tc, _, err := serverCreds.ServerHandshake(c); err == nil {
					_ = tc.Close()
				}
				_ = c.Close()
			}()
		}
	}()
	creds, err := tlsconfig.ClientCredentials(tlsconfig.Files{CA: f.CA})
	require.NoError(t, err)
	static, err := tlsconfig.Client(tlsconfig.Files{CA: f.CA})
	require.NoError(t, err)
	static.ServerName = "127.0.0.1"
	static.NextProtos = []string{"h2"}
	dial := func() error {
		raw, err := net.Dial("tcp", lis.Addr().String())
		require.NoError(t, err)
		defer raw.Close()
		conn, _, err := creds.ClientHandshake(context.Background(), lis.Addr().String(), raw)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	require.NoError(t, dial())

	// A new CA for the site: its certificate replaces ca.pem, and the
	// server's pair is re-issued by it.
	ca2, p2, err := certs.NewCA("ca2", time.Hour, time.Now())
	require.NoError(t, err)
	_, _, err = certs.WritePair(s.Dir, "ca", p2, true)
	require.NoError(t, err)
	s.CA = ca2
	s.issueEdge(t, "server", "srv")

	require.NoError(t, dial(), "verified against the CA now on disk")
	conn, err := tls.Dial("tcp", lis.Addr().String(), static)
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "the CA read once at start does not know the new server")

	// The server name is still checked: a name the certificate does not
	// carry is refused.
	raw, err := net.Dial("tcp", lis.Addr().String())
	require.NoError(t, err)
	defer raw.Close()
	_, _, err = creds.ClientHandshake(context.Background(), "central.example:7443", raw)
	require.Error(t, err)
}
