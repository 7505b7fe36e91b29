package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// credentialsSecret returns a Secret holding data as its keys.
func credentialsSecret(data map[string]string) *corev1.Secret {
	secret := &corev1.Secret{Data: map[string][]byte{}}
	for k, v := range data {
		secret.Data[k] = []byte(v)
	}
	return secret
}

func TestCredentialsFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		grant       authv1alpha1.Grant
		data        map[string]string
		want        credentials
		wantMissing []string
	}{
		{
			name:  "client credentials",
			grant: authv1alpha1.GrantClientCredentials,
			data:  map[string]string{authv1alpha1.ClientIDKey: "1_abc", authv1alpha1.ClientSecretKey: "s3cret"},
			want:  credentials{clientID: "1_abc", clientSecret: "s3cret"},
		},
		{
			name:  "client credentials ignore basic keys",
			grant: authv1alpha1.GrantClientCredentials,
			data: map[string]string{authv1alpha1.ClientIDKey: "1_abc", authv1alpha1.ClientSecretKey: "s3cret",
				authv1alpha1.UsernameKey: "admin", authv1alpha1.PasswordKey: "pw"},
			want: credentials{clientID: "1_abc", clientSecret: "s3cret"},
		},
		{
			name:  "client credentials trimmed (a trailing newline from echo)",
			grant: authv1alpha1.GrantClientCredentials,
			data:  map[string]string{authv1alpha1.ClientIDKey: " 1_abc\n", authv1alpha1.ClientSecretKey: "\ts3cret \r\n"},
			want:  credentials{clientID: "1_abc", clientSecret: "s3cret"},
		},
		{
			name:        "client credentials, both missing",
			grant:       authv1alpha1.GrantClientCredentials,
			data:        map[string]string{},
			wantMissing: []string{authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey},
		},
		{
			name:        "client credentials, secret empty",
			grant:       authv1alpha1.GrantClientCredentials,
			data:        map[string]string{authv1alpha1.ClientIDKey: "1_abc", authv1alpha1.ClientSecretKey: ""},
			want:        credentials{clientID: "1_abc"},
			wantMissing: []string{authv1alpha1.ClientSecretKey},
		},
		{
			name:        "client credentials, id only whitespace",
			grant:       authv1alpha1.GrantClientCredentials,
			data:        map[string]string{authv1alpha1.ClientIDKey: " \n", authv1alpha1.ClientSecretKey: "s3cret"},
			want:        credentials{clientSecret: "s3cret"},
			wantMissing: []string{authv1alpha1.ClientIDKey},
		},
		{
			name:        "client credentials from a Secret with basic keys only",
			grant:       authv1alpha1.GrantClientCredentials,
			data:        map[string]string{authv1alpha1.UsernameKey: "admin", authv1alpha1.PasswordKey: "pw"},
			wantMissing: []string{authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey},
		},
		{
			name:  "basic",
			grant: authv1alpha1.GrantBasic,
			data:  map[string]string{authv1alpha1.UsernameKey: "admin", authv1alpha1.PasswordKey: "pw"},
			want:  credentials{username: "admin", password: "pw"},
		},
		{
			name:  "basic trims the username but keeps the password verbatim",
			grant: authv1alpha1.GrantBasic,
			data:  map[string]string{authv1alpha1.UsernameKey: " admin\n", authv1alpha1.PasswordKey: "  pw with spaces \n"},
			want:  credentials{username: "admin", password: "  pw with spaces \n"},
		},
		{
			name:  "basic password of spaces only is a password",
			grant: authv1alpha1.GrantBasic,
			data:  map[string]string{authv1alpha1.UsernameKey: "admin", authv1alpha1.PasswordKey: "   "},
			want:  credentials{username: "admin", password: "   "},
		},
		{
			name:        "basic, both missing",
			grant:       authv1alpha1.GrantBasic,
			data:        map[string]string{authv1alpha1.ClientIDKey: "1_abc", authv1alpha1.ClientSecretKey: "s3cret"},
			wantMissing: []string{authv1alpha1.UsernameKey, authv1alpha1.PasswordKey},
		},
		{
			name:        "basic, password empty",
			grant:       authv1alpha1.GrantBasic,
			data:        map[string]string{authv1alpha1.UsernameKey: "admin", authv1alpha1.PasswordKey: ""},
			want:        credentials{username: "admin"},
			wantMissing: []string{authv1alpha1.PasswordKey},
		},
		{
			name:        "basic, username only whitespace",
			grant:       authv1alpha1.GrantBasic,
			data:        map[string]string{authv1alpha1.UsernameKey: "\t", authv1alpha1.PasswordKey: "pw"},
			want:        credentials{password: "pw"},
			wantMissing: []string{authv1alpha1.UsernameKey},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			got, missing := credentialsFrom(tc.grant, credentialsSecret(tc.data))

			g.Expect(got).To(Equal(tc.want))
			g.Expect(missing).To(Equal(tc.wantMissing))
		})
	}
}

func TestCredentialsFromASecretWithoutData(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	_, missing := credentialsFrom(authv1alpha1.GrantBasic, &corev1.Secret{})
	g.Expect(missing).To(Equal([]string{authv1alpha1.UsernameKey, authv1alpha1.PasswordKey}))
}

func TestRequiredKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		grant authv1alpha1.Grant
		want  []string
	}{
		{"client credentials", authv1alpha1.GrantClientCredentials, []string{"client_id", "client_secret"}},
		{"basic", authv1alpha1.GrantBasic, []string{"username", "password"}},
		// The API server defaults spec.grant; an object built in code may still leave it empty.
		{"empty means client credentials", "", []string{"client_id", "client_secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(requiredKeys(tc.grant)).To(Equal(tc.want))
		})
	}
}

func TestKeyList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys []string
		want string
	}{
		{"none", nil, ""},
		{"empty", []string{}, ""},
		{"one", []string{"client_id"}, "client_id"},
		{"two", []string{"client_id", "client_secret"}, "client_id and client_secret"},
		{"three", []string{"a", "b", "c"}, "a, b and c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(keyList(tc.keys)).To(Equal(tc.want))
		})
	}
}

// selfSignedPEM returns a freshly generated self-signed CA certificate and its private key, in PEM.
func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Mautic test CA"},
		NotBefore:             testIssuedAt.Add(-time.Hour),
		NotAfter:              testIssuedAt.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating a certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("encoding the key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func TestCACertFrom(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := selfSignedPEM(t)
	caSecret := func(bundle []byte) *corev1.Secret {
		return &corev1.Secret{Data: map[string][]byte{authv1alpha1.CACertKey: bundle}}
	}
	concat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	brokenCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	tests := []struct {
		name        string
		secret      *corev1.Secret
		wantBundle  []byte
		wantProblem string
	}{
		{name: "nil Secret", secret: nil, wantProblem: "not found"},
		{name: "no ca.crt key", secret: &corev1.Secret{Data: map[string][]byte{"tls.crt": certPEM}}, wantProblem: "has no key ca.crt"},
		{name: "empty ca.crt", secret: caSecret([]byte{}), wantProblem: "has no key ca.crt"},
		{name: "garbage", secret: caSecret([]byte("this is not PEM")), wantProblem: "holds no PEM certificate in key ca.crt"},
		{name: "a private key only", secret: caSecret(keyPEM), wantProblem: "holds no PEM certificate in key ca.crt"},
		{name: "a CERTIFICATE block that does not parse", secret: caSecret(brokenCert),
			wantProblem: "holds a certificate that does not parse ("},
		{name: "a good certificate after a broken one", secret: caSecret(concat(brokenCert, certPEM)),
			wantProblem: "holds a certificate that does not parse ("},
		{name: "a real certificate", secret: caSecret(certPEM), wantBundle: certPEM},
		{name: "a bundle of two", secret: caSecret(concat(certPEM, certPEM)), wantBundle: concat(certPEM, certPEM)},
		{name: "text around the certificate", secret: caSecret(concat([]byte("# Mautic CA\n"), certPEM, []byte("\n"))),
			wantBundle: concat([]byte("# Mautic CA\n"), certPEM, []byte("\n"))},
		{name: "a key next to the certificate", secret: caSecret(concat(keyPEM, certPEM)), wantBundle: concat(keyPEM, certPEM)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			bundle, problem := caCertFrom(tc.secret)

			if tc.wantProblem == "" {
				g.Expect(problem).To(BeEmpty())
				g.Expect(bundle).To(Equal(tc.wantBundle))
				return
			}
			g.Expect(problem).To(HavePrefix(tc.wantProblem))
			g.Expect(bundle).To(BeNil())
		})
	}
}

func TestCredentialsHash(t *testing.T) {
	t.Parallel()
	base := credentials{clientID: "1_abc", clientSecret: "s3cret", username: "admin", password: "pw"}
	tests := []struct {
		name  string
		grant authv1alpha1.Grant
		creds credentials
	}{
		{"client id differs", authv1alpha1.GrantClientCredentials, credentials{clientID: "1_abd", clientSecret: "s3cret", username: "admin", password: "pw"}},
		{"client secret differs", authv1alpha1.GrantClientCredentials, credentials{clientID: "1_abc", clientSecret: "s3creT", username: "admin", password: "pw"}},
		{"username differs", authv1alpha1.GrantClientCredentials, credentials{clientID: "1_abc", clientSecret: "s3cret", username: "admim", password: "pw"}},
		{"password differs", authv1alpha1.GrantClientCredentials, credentials{clientID: "1_abc", clientSecret: "s3cret", username: "admin", password: "pw "}},
		{"grant differs", authv1alpha1.GrantBasic, base},
		{"values moved between fields", authv1alpha1.GrantClientCredentials, credentials{clientID: "s3cret", clientSecret: "1_abc", username: "admin", password: "pw"}},
		{"value split differently", authv1alpha1.GrantClientCredentials, credentials{clientID: "1_abcs3", clientSecret: "cret", username: "admin", password: "pw"}},
	}
	baseHash := base.hash(authv1alpha1.GrantClientCredentials)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			got := tc.creds.hash(tc.grant)

			g.Expect(got).NotTo(Equal(baseHash))
			g.Expect(got).To(Equal(tc.creds.hash(tc.grant)), "the hash is stable")
			for _, value := range []string{"1_abc", "s3cret", "admin", "pw"} {
				g.Expect(got).NotTo(ContainSubstring(value))
			}
		})
	}
}
