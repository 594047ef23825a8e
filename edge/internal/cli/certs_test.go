package cli

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/internal/certs"
)

func readCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

func TestCertsInitAndIssueMakeAVerifyingChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, _, stderr := run(t, "", "certs", "init", "--dir", dir)
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run(t, "", "certs", "issue-edge", "--dir", dir, "--id", "site-1")
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run(t, "", "certs", "issue-central", "--dir", dir, "--hosts", "central.example.org,127.0.0.1")
	require.Equal(t, ExitOK, code, stderr)

	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, "ca.pem")))
	edge := readCert(t, filepath.Join(dir, "edge-site-1.pem"))
	_, err := edge.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	require.Equal(t, "chasqui://edge/site-1", edge.URIs[0].String())
	id, err := certs.EdgeID(edge)
	require.NoError(t, err)
	require.Equal(t, "site-1", id)
	central := readCert(t, filepath.Join(dir, "central.pem"))
	_, err = central.Verify(x509.VerifyOptions{Roots: roots, DNSName: "central.example.org"})
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(dir, "edge-site-1-key.pem"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Existing files are kept unless --force; issuing needs a CA.
	code, _, stderr = run(t, "", "certs", "init", "--dir", dir)
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "--force")
	code, _, _ = run(t, "", "certs", "issue-edge", "--dir", dir, "--id", "site-1", "--force")
	require.Equal(t, ExitOK, code)
	code, _, stderr = run(t, "", "certs", "issue-edge", "--dir", t.TempDir(), "--id", "x")
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "certs init")
	code, _, _ = run(t, "", "certs", "issue-edge", "--dir", dir)
	require.Equal(t, ExitUsage, code, "--id is required")
}
