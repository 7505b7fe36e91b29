package mautictest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// certificateValidity is how long a certificate made by SetCertificateHosts is valid: long enough
// for any test run, short enough that nobody mistakes it for a real certificate.
const certificateValidity = 7 * 24 * time.Hour

// SetCertificateHosts makes the HTTPS server present a new self-signed certificate that names
// each host, a DNS name or an IP address, instead of httptest's certificate (which names
// 127.0.0.1, ::1 and example.com only). Call it before StartTLS or StartTLSOn; CACertPEM then
// returns the new certificate, which is its own CA.
func (s *Server) SetCertificateHosts(hosts ...string) error {
	if len(hosts) == 0 {
		return errors.New("mautictest: SetCertificateHosts needs at least one DNS name or IP address")
	}
	certificate, err := selfSignedCertificate(hosts)
	if err != nil {
		return err
	}
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12}
	return nil
}

// selfSignedCertificate returns an ECDSA P-256 serving certificate, signed by its own key, naming
// hosts as IP or DNS subject alternative names.
func selfSignedCertificate(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mautictest: generating a certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mautictest: generating a certificate serial: %w", err)
	}
	notBefore := time.Now().Add(-time.Hour)
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"mautictest"}, CommonName: hosts[0]},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(certificateValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, host := range hosts {
		if ip := net.ParseIP(host); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mautictest: creating a certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
