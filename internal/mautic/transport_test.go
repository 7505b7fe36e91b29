package mautic

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

func TestForbiddenIP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ip        string
		forbidden bool
	}{
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"fe80::1", true},
		{"febf::1", true},
		{"fd00:ec2::254", true},
		{"224.0.0.1", true},
		{"ff02::1", true},
		{"127.0.0.1", false},
		{"10.0.0.1", false},
		{"100.100.100.200", false},
		{"fd00:ec2::253", false},
		{"2001:db8::1", false},
		{"64:ff9b::a01:101", false},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(forbiddenIP(net.ParseIP(tc.ip))).To(Equal(tc.forbidden))
		})
	}
}

func TestCheckDialAddress(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	err := checkDialAddress("rebind.example.com", "169.254.169.254:80")
	var forbidden *ForbiddenAddressError
	g.Expect(errors.As(err, &forbidden)).To(BeTrue())
	g.Expect(*forbidden).To(Equal(ForbiddenAddressError{Host: "rebind.example.com", IP: "169.254.169.254"}))
	g.Expect(checkDialAddress("m.example.com", "[fe80::1%eth0]:443")).NotTo(Succeed())
	g.Expect(checkDialAddress("m.example.com", "93.184.216.34:443")).To(Succeed())
}

func TestLinkLocalTargetsAreRefused(t *testing.T) {
	t.Parallel()
	for _, baseURL := range []string{
		"http://169.254.169.254",
		"http://169.254.169.254:8080/index.php",
		"https://[fe80::1]",
		"http://[fd00:ec2::254]",
		"http://metadata.google.internal",
		"http://Metadata.Google.Internal.",
	} {
		t.Run(baseURL, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			observed := 0
			opts := fastOptions()
			opts.Observe = func(Op, Grant, int, time.Duration) { observed++ }
			c := New(opts)
			_, err := c.Token(context.Background(), TokenRequest{Site: Site{BaseURL: baseURL}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s"})
			var forbidden *ForbiddenAddressError
			g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%v", err)
			g.Expect(Classify(err)).To(Equal(ClassConfiguration))
			_, err = c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: baseURL}, Authorization: BearerAuthorization("t")})
			g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%v", err)
			g.Expect(observed).To(BeZero(), "no request may be made")
		})
	}
}

func TestDialTimeCheck(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// The dialer's Control hook sees the resolved address: dialling a forbidden literal through it fails before connecting.
	c := New(fastOptions()).(*client)
	_, err := c.dialContext(context.Background(), "tcp", "169.254.169.254:80")
	var forbidden *ForbiddenAddressError
	g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%v", err)
	g.Expect(forbidden.IP).To(Equal("169.254.169.254"))

	allowed := New(Options{AllowLinkLocal: true, Timeout: 50 * time.Millisecond}).(*client)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not really dial out: only show that the hook is gone
	_, err = allowed.dialContext(ctx, "tcp", "169.254.169.254:80")
	g.Expect(errors.As(err, &forbidden)).To(BeFalse())
}

// TestTypedErrorsSurviveHTTPClient checks the premise of guardedTransport: an error a
// RoundTripper returns reaches http.Client.Do's caller wrapped in *url.Error, which unwraps, so
// errors.As finds it.
func TestTypedErrorsSurviveHTTPClient(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServer()
	defer s.Close()
	s.InjectFault(mautictest.FaultHTML, 1)
	c := New(fastOptions()).(*client)
	hc, err := c.httpClient(nil)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := withCall(context.Background(), &callInfo{op: OpVerify})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+DefaultVerifyPath, nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := hc.Do(req)
	if resp != nil {
		_ = resp.Body.Close()
	}
	var urlErr *url.Error
	g.Expect(errors.As(err, &urlErr)).To(BeTrue(), "%T %v", err, err)
	var unexpected *UnexpectedResponseError
	g.Expect(errors.As(err, &unexpected)).To(BeTrue())
	g.Expect(unexpected.ContentType).To(HavePrefix("text/html"))
}

func TestTransportCache(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewTLSServer()
	defer s.Close()
	c := New(fastOptions()).(*client)
	plain, err := c.httpClient(nil)
	g.Expect(err).NotTo(HaveOccurred())
	again, err := c.httpClient([]byte{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(plain))
	withCA, err := c.httpClient(s.CACertPEM())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(withCA).NotTo(BeIdenticalTo(plain))
	sameCA, err := c.httpClient(append([]byte(nil), s.CACertPEM()...))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sameCA).To(BeIdenticalTo(withCA))
}

func TestRateLimitHonoursContext(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServer()
	defer s.Close()
	app := s.NewClient("crm", true)
	c := New(Options{RequestsPerSecond: 0.001, Burst: 1})

	_, err := c.Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Token(ctx, ccRequest(s, app))
	g.Expect(err).To(MatchError(ContainSubstring("waiting for the request limit")))
	g.Expect(Classify(err)).To(Equal(ClassTransient))

	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, err = c.Verify(cancelled, VerifyRequest{Site: Site{BaseURL: s.URL()}, Authorization: BearerAuthorization("t")})
	g.Expect(err).To(MatchError(context.Canceled))
	g.Expect(s.TokenRequests()).To(Equal(1))
	g.Expect(s.APIRequests()).To(BeZero())

	// Another host has its own bucket.
	other := mautictest.NewServer()
	defer other.Close()
	_, err = c.Token(context.Background(), ccRequest(other, other.NewClient("crm", true)))
	g.Expect(err).NotTo(HaveOccurred())
}
