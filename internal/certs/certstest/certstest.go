// Package certstest makes a site's CA and certificates in a test's
// temporary directory, with the same code as `chasqui certs`.
package certstest

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/chasqui/chasqui/internal/certs"
)

// Site is a CA whose certificate is Dir/ca.pem; leaf pairs go beside it
// as NAME.pem and NAME-key.pem.
type Site struct {
	Dir string
	CA  *certs.CA
}

// NewSite makes a CA valid for an hour in a new temporary directory.
func NewSite(t testing.TB) *Site {
	t.Helper()
	ca, p, err := certs.NewCA("test site CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := &Site{Dir: t.TempDir(), CA: ca}
	s.write(t, "ca", p)
	return s
}

// Path is the path of file name in the site's directory.
func (s *Site) Path(name string) string { return filepath.Join(s.Dir, name) }

// Central issues central's pair for 127.0.0.1 as central.pem.
func (s *Site) Central(t testing.TB) *x509.Certificate {
	t.Helper()
	p, c, err := s.CA.IssueCentral([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, "central", p)
	return c
}

// Edge issues edge id's pair for 127.0.0.1 as name.pem, replacing one
// already there (a rotation).
func (s *Site) Edge(t testing.TB, name, id string) *x509.Certificate {
	t.Helper()
	p, c, err := s.CA.IssueEdge(id, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, name, p)
	return c
}

func (s *Site) write(t testing.TB, name string, p certs.Pair) {
	t.Helper()
	if _, _, err := certs.WritePair(s.Dir, name, p, true); err != nil {
		t.Fatal(err)
	}
}
