package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/internal/certs"
)

func parse(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	require.NotNil(t, b)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}

func TestChainVerifiesWithSAN(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca, caPair, err := certs.NewCA("site CA", certs.DefaultCAValidity, now)
	require.NoError(t, err)
	dir := t.TempDir()
	caCert, caKey, err := certs.WritePair(dir, "ca", caPair, false)
	require.NoError(t, err)
	fi, err := os.Stat(caKey)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "keys are private")

	// A reloaded CA signs as well as a fresh one.
	ca2, err := certs.LoadCA(caCert, caKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	edge, edgeCert, err := ca2.IssueEdge("site-1", []string{"localhost", "127.0.0.1"}, certs.DefaultLeafValidity, now)
	require.NoError(t, err)
	_, err = edgeCert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err, "edge cert is a client cert of the CA")
	_, err = edgeCert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"})
	require.NoError(t, err, "edge cert serves instruments too")
	require.Len(t, edgeCert.URIs, 1)
	require.Equal(t, "chasqui://edge/site-1", edgeCert.URIs[0].String())
	id, err := certs.EdgeID(edgeCert)
	require.NoError(t, err)
	require.Equal(t, "site-1", id)
	_, err = tls.X509KeyPair(edge.CertPEM, edge.KeyPEM)
	require.NoError(t, err)

	central, centralCert, err := ca.IssueCentral([]string{"central.example.org", "127.0.0.1"}, time.Hour, now)
	require.NoError(t, err)
	_, err = parse(t, central.CertPEM).Verify(x509.VerifyOptions{Roots: roots, DNSName: "central.example.org"})
	require.NoError(t, err)
	_, err = centralCert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.Error(t, err, "central's certificate cannot pose as a client (an edge)")

	// Another CA's certificate does not verify.
	_, other, err := certs.NewCA("other", time.Hour, now)
	require.NoError(t, err)
	_, err = parse(t, other.CertPEM).Verify(x509.VerifyOptions{Roots: roots})
	require.Error(t, err)

	// No overwrite without force.
	_, _, err = certs.WritePair(dir, "ca", caPair, false)
	require.ErrorContains(t, err, "exists")
}

func TestEdgeIDRules(t *testing.T) {
	t.Parallel()
	ca, _, err := certs.NewCA("ca", time.Hour, time.Now())
	require.NoError(t, err)
	_, c, err := ca.IssueEdge("site/with space", nil, time.Hour, time.Now())
	require.NoError(t, err)
	id, err := certs.EdgeID(c)
	require.NoError(t, err)
	require.Equal(t, "site/with space", id, "the id survives escaping")

	// Fallback: the common name, for certificates made by other tools.
	_, c, err = ca.IssueClient("site-cn", time.Hour, time.Now())
	require.NoError(t, err)
	id, err = certs.EdgeID(c)
	require.NoError(t, err)
	require.Equal(t, "site-cn", id)

	// Two edge URIs: ambiguous, refused.
	_, c, err = ca.Issue(certs.Leaf{CommonName: "x", URIs: []*url.URL{certs.EdgeURI("a"), certs.EdgeURI("b")}, Client: true, Validity: time.Hour, Now: time.Now()})
	require.NoError(t, err)
	_, err = certs.EdgeID(c)
	require.ErrorIs(t, err, certs.ErrNoEdgeID)
}

func TestLoadCARefusesMismatchedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, a, err := certs.NewCA("a", time.Hour, time.Now())
	require.NoError(t, err)
	_, b, err := certs.NewCA("b", time.Hour, time.Now())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), a.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), b.KeyPEM, 0o600))
	_, err = certs.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem"))
	require.ErrorContains(t, err, "does not match")
}
