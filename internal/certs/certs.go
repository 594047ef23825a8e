// Package certs makes the certificates of a Chasqui site with the standard
// library only: a CA, edge certificates (client and server, naming the edge
// in a URI SAN chasqui://edge/<id>) and central certificates (server only).
// It also reads the edge identity back out of a verified certificate; that
// reading is the one rule central's authentication relies on.
//
// Keys are ECDSA P-256 in PKCS #8 PEM, written with mode 0600.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Edge identity in certificates.
const (
	// URIScheme and EdgeHost make the edge's URI SAN chasqui://edge/<id>.
	URIScheme = "chasqui"
	EdgeHost  = "edge"
	// Organization is put in every subject this package makes.
	Organization = "Chasqui"
)

// Default validities.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 397 * 24 * time.Hour
)

// EdgeURI is the URI SAN naming edge id: chasqui://edge/<id>, the id
// path-escaped.
func EdgeURI(id string) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: EdgeHost, Path: "/" + id}
}

// ErrNoEdgeID means a certificate names no edge.
var ErrNoEdgeID = errors.New("certificate names no edge")

// EdgeID reads the edge id of a (verified) certificate: the URI SAN
// chasqui://edge/<id> when there is one; otherwise, for certificates made
// by other tools, the subject common name. A certificate with two
// chasqui://edge URIs is refused as ambiguous.
func EdgeID(c *x509.Certificate) (string, error) {
	id := ""
	for _, u := range c.URIs {
		if u.Scheme != URIScheme || u.Host != EdgeHost {
			continue
		}
		if id != "" {
			return "", fmt.Errorf("%w: more than one %s://%s/ URI SAN", ErrNoEdgeID, URIScheme, EdgeHost)
		}
		id = strings.TrimPrefix(u.Path, "/")
		if id == "" {
			return "", fmt.Errorf("%w: empty %s://%s/ URI SAN", ErrNoEdgeID, URIScheme, EdgeHost)
		}
	}
	if id != "" {
		return id, nil
	}
	if cn := c.Subject.CommonName; cn != "" {
		return cn, nil
	}
	return "", ErrNoEdgeID
}

// CA is a certificate authority able to sign leaves.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate in PEM, as written to ca.pem.
	PEM []byte
}

// Pair is a certificate and its key, both PEM.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// NewCA makes a self-signed CA named name, valid from now for validity.
func NewCA(name string, validity time.Duration, now time.Time) (*CA, Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, Pair{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{Organization}},
		NotBefore:             now.Add(-5 * time.Minute), // clock skew between hosts
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, Pair{}, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, Pair{}, err
	}
	p, err := encode(der, key)
	if err != nil {
		return nil, Pair{}, err
	}
	return &CA{Cert: cert, Key: key, PEM: p.CertPEM}, p, nil
}

// LoadCA reads a CA certificate and key from PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	ca, err := LoadCAFromPEM(Pair{CertPEM: certPEM, KeyPEM: keyPEM})
	if err != nil {
		return nil, fmt.Errorf("CA %s, %s: %w", certFile, keyFile, err)
	}
	return ca, nil
}

// LoadCAFromPEM parses a CA certificate and its key. Errors never echo the
// key's content.
func LoadCAFromPEM(p Pair) (*CA, error) {
	b, _ := pem.Decode(p.CertPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("certificate: not a CA")
	}
	kb, _ := pem.Decode(p.KeyPEM)
	if kb == nil {
		return nil, errors.New("key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return nil, errors.New("key: not a PKCS #8 or EC private key")
		}
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key: unsupported key type")
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, errors.New("key does not match the certificate")
	}
	return &CA{Cert: cert, Key: signer, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName string
	// Hosts are DNS names and IP addresses the certificate is valid for as
	// a server.
	Hosts []string
	URIs  []*url.URL
	// Client and Server choose the extended key usages.
	Client, Server bool
	Validity       time.Duration
	Now            time.Time
}

// Issue signs a leaf certificate with a fresh key.
func (ca *CA) Issue(l Leaf) (Pair, *x509.Certificate, error) {
	if l.Validity <= 0 {
		return Pair{}, nil, errors.New("certs: validity must be positive")
	}
	if !l.Client && !l.Server {
		return Pair{}, nil, errors.New("certs: a leaf is a client, a server or both")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return Pair{}, nil, err
	}
	notAfter := l.Now.Add(l.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter // a leaf cannot outlive its CA
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: l.CommonName, Organization: []string{Organization}},
		NotBefore:      l.Now.Add(-5 * time.Minute),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		URIs:           l.URIs,
		SubjectKeyId:   keyID(&key.PublicKey),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Pair{}, nil, err
	}
	p, err := encode(der, key)
	return p, cert, err
}

// IssueEdge issues the certificate of edge id: a client certificate for
// central (the URI SAN chasqui://edge/<id> is its identity) that is also
// the server certificate instruments see, valid for hosts.
func (ca *CA) IssueEdge(id string, hosts []string, validity time.Duration, now time.Time) (Pair, *x509.Certificate, error) {
	if id == "" {
		return Pair{}, nil, errors.New("certs: edge id is required")
	}
	return ca.Issue(Leaf{
		CommonName: id, Hosts: hosts, URIs: []*url.URL{EdgeURI(id)},
		Client: true, Server: true, Validity: validity, Now: now,
	})
}

// IssueCentral issues central's server certificate for hosts. It is a
// server certificate only, so it cannot be used to pose as an edge.
func (ca *CA) IssueCentral(hosts []string, validity time.Duration, now time.Time) (Pair, *x509.Certificate, error) {
	if len(hosts) == 0 {
		return Pair{}, nil, errors.New("certs: central needs at least one host name or IP")
	}
	return ca.Issue(Leaf{CommonName: "chasqui-central", Hosts: hosts, Server: true, Validity: validity, Now: now})
}

// IssueClient issues a client-only certificate (an operator's CLI, an
// instrument) named name.
func (ca *CA) IssueClient(name string, validity time.Duration, now time.Time) (Pair, *x509.Certificate, error) {
	return ca.Issue(Leaf{CommonName: name, Client: true, Validity: validity, Now: now})
}

func encode(der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(b)
	return sum[:20]
}

// WritePair writes dir/name.pem (0644) and dir/name-key.pem (0600). It
// refuses to overwrite existing files unless overwrite. Each file is
// written beside its final name and renamed into place, so a running
// service never reads a half-written file.
func WritePair(dir, name string, p Pair, overwrite bool) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	if !overwrite {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Stat(f); err == nil {
				return "", "", fmt.Errorf("%s exists (use --force to replace it)", f)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	// Key first: a service reloading on the certificate's change then finds
	// the matching key already in place.
	if err := writeAtomic(keyFile, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certFile, p.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writeAtomic(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
