package mautictest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// TestSetCertificateHostsServesOnAnyLoopbackAddress shows a server on 127.0.0.2, which httptest's
// own certificate does not name, trusted through CACertPEM alone.
func TestSetCertificateHostsServesOnAnyLoopbackAddress(t *testing.T) {
	g := NewWithT(t)
	server := mautictest.NewUnstartedServer()
	g.Expect(server.SetCertificateHosts("127.0.0.2", "mautic.mautic-test.svc")).To(Succeed())
	g.Expect(server.StartTLSOn("127.0.0.2:0")).To(Succeed())
	t.Cleanup(server.Close)

	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(server.CACertPEM())).To(BeTrue())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, server.URL()+"/api/users/self", nil)
	g.Expect(err).NotTo(HaveOccurred())
	answer, err := client.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(answer.Body.Close()).To(Succeed())
	g.Expect(answer.StatusCode).To(Equal(http.StatusUnauthorized))

	block, _ := pem.Decode(server.CACertPEM())
	g.Expect(block).NotTo(BeNil())
	certificate, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(certificate.DNSNames).To(ConsistOf("mautic.mautic-test.svc"))
	g.Expect(certificate.IPAddresses).To(HaveLen(1))
	g.Expect(certificate.IPAddresses[0].String()).To(Equal("127.0.0.2"))
}

func TestSetCertificateHostsNeedsAHost(t *testing.T) {
	NewWithT(t).Expect(mautictest.NewUnstartedServer().SetCertificateHosts()).To(MatchError(ContainSubstring("at least one")))
}
