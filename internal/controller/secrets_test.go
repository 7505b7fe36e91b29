package controller

import (
	"maps"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

const (
	testNamespace       = "sales"
	testConnectionName  = "crm"
	testConnectionUID   = "5f0c2a52-8d0e-4c43-9a34-0d6c1a1e7b10"
	testCredentialsName = "mautic-api"
	testSiteURL         = "https://mautic.example.com"
	testAccessToken     = "NzQ3ZjM1ZTc0YjYwYjM0YTEx"
	// testBasicAuthorization is "Basic " + base64("admin:s3cret").
	testBasicAuthorization = "Basic YWRtaW46czNjcmV0"
)

// testIssuedAt is when the fixtures' tokens were obtained; whole seconds in UTC, as obtainToken
// produces them, so that they survive the RFC 3339 round trip through the token Secret.
var testIssuedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testConnection returns, each time a new copy, a ClientCredentials connection with a UID (for
// owner references) and generation 3 (for observedGeneration).
func testConnection() *authv1alpha1.MauticConnection {
	return &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: testConnectionName, Namespace: testNamespace, UID: testConnectionUID, Generation: 3},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  testSiteURL,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: testCredentialsName},
		},
	}
}

// withTemplate returns conn with a token Secret template.
func withTemplate(conn *authv1alpha1.MauticConnection, labels, annotations map[string]string) *authv1alpha1.MauticConnection {
	conn.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Template: &authv1alpha1.SecretTemplate{Labels: labels, Annotations: annotations}}
	return conn
}

// bearerToken returns a bearer token obtained at issuedAt that lives for lifetime.
func bearerToken(issuedAt time.Time, lifetime time.Duration) *issuedToken {
	return &issuedToken{
		Issued: token.Issued{
			IssuedAt:        issuedAt,
			ExpiresAt:       issuedAt.Add(lifetime),
			CredentialsHash: hashOf("credentials"),
			ConnectionHash:  hashOf("connection"),
		},
		AccessToken:   testAccessToken,
		Authorization: "Bearer " + testAccessToken,
		TokenType:     authv1alpha1.TokenTypeBearer,
		URL:           testSiteURL,
	}
}

// basicToken returns Basic credentials verified at verifiedAt; they do not expire.
func basicToken(verifiedAt time.Time) *issuedToken {
	return &issuedToken{
		Issued: token.Issued{
			IssuedAt:        verifiedAt,
			CredentialsHash: hashOf("credentials"),
			ConnectionHash:  hashOf("connection"),
		},
		Authorization: testBasicAuthorization,
		TokenType:     authv1alpha1.TokenTypeBasic,
		URL:           testSiteURL,
	}
}

// secretFromApply builds the Secret the API server would hold after applying ac, field by field.
// Maps are copied so that a test can edit the Secret without touching ac.
func secretFromApply(ac *corev1ac.SecretApplyConfiguration) *corev1.Secret {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        *ac.Name,
			Namespace:   *ac.Namespace,
			Labels:      maps.Clone(ac.Labels),
			Annotations: maps.Clone(ac.Annotations),
		},
		Type: *ac.Type,
		Data: map[string][]byte{},
	}
	for k, v := range ac.Data {
		secret.Data[k] = append([]byte(nil), v...)
	}
	for _, ref := range ac.OwnerReferences {
		secret.OwnerReferences = append(secret.OwnerReferences, metav1.OwnerReference{
			APIVersion:         *ref.APIVersion,
			Kind:               *ref.Kind,
			Name:               *ref.Name,
			UID:                *ref.UID,
			Controller:         ref.Controller,
			BlockOwnerDeletion: ref.BlockOwnerDeletion,
		})
	}
	return secret
}

// publishedSecret returns the token Secret the operator writes for t on conn.
func publishedSecret(conn *authv1alpha1.MauticConnection, t *issuedToken) *corev1.Secret {
	return secretFromApply(tokenSecretApply(conn, t))
}

func TestTokenSecretApplyShape(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	conn.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Name: "crm-bearer"}

	tok := bearerToken(testIssuedAt, time.Hour)
	apply := tokenSecretApply(conn, tok)

	g.Expect(*apply.Name).To(Equal("crm-bearer"))
	g.Expect(*apply.Namespace).To(Equal(testNamespace))
	g.Expect(*apply.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(apply.OwnerReferences).To(HaveLen(1))
	owner := apply.OwnerReferences[0]
	g.Expect(*owner.APIVersion).To(Equal(authv1alpha1.GroupVersion.String()))
	g.Expect(*owner.Kind).To(Equal("MauticConnection"))
	g.Expect(*owner.Name).To(Equal(testConnectionName))
	g.Expect(*owner.UID).To(BeEquivalentTo(testConnectionUID))
	g.Expect(*owner.Controller).To(BeTrue())
	g.Expect(*owner.BlockOwnerDeletion).To(BeTrue())
	g.Expect(apply.Annotations).To(HaveKeyWithValue(authv1alpha1.TokenHashAnnotation, tokenHash(tokenSecretData(tok))))
	g.Expect(apply.Annotations).To(HaveKey(authv1alpha1.AppliedHashAnnotation))
	for key, value := range apply.Annotations {
		g.Expect(value).NotTo(ContainSubstring(testAccessToken), "annotation %s holds the token", key)
	}
}

func TestTokenSecretRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token *issuedToken
	}{
		{"bearer", bearerToken(testIssuedAt, time.Hour)},
		{"bearer with a short lifetime", bearerToken(testIssuedAt, 90*time.Second)},
		// issued-at keeps nanoseconds (RFC 3339 Nano); expires_at is whole seconds, as obtainToken makes it.
		{"bearer issued with sub-second precision", subSecondBearer()},
		{"basic", basicToken(testIssuedAt)},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			secret := publishedSecret(testConnection(), tc.token)

			got := issuedFromSecret(secret)

			g.Expect(got).NotTo(BeNil())
			g.Expect(got.IssuedAt).To(BeTemporally("==", tc.token.IssuedAt))
			g.Expect(got.ExpiresAt).To(BeTemporally("==", tc.token.ExpiresAt))
			// The rest field by field: times are compared above as instants, not as structs.
			g.Expect(got.CredentialsHash).To(Equal(tc.token.CredentialsHash))
			g.Expect(got.ConnectionHash).To(Equal(tc.token.ConnectionHash))
			g.Expect(got.AccessToken).To(Equal(tc.token.AccessToken))
			g.Expect(got.Authorization).To(Equal(tc.token.Authorization))
			g.Expect(got.TokenType).To(Equal(tc.token.TokenType))
			g.Expect(got.URL).To(Equal(tc.token.URL))
			// What was read back is what the operator would publish again: no drift, no re-apply.
			g.Expect(tokenSecretCurrent(secret, testConnection(), got)).To(BeTrue())
		})
	}
}

// subSecondBearer is a bearer token issued at a time with nanoseconds and expiring on a whole second.
func subSecondBearer() *issuedToken {
	t := bearerToken(testIssuedAt.Add(123456789*time.Nanosecond), 0)
	t.ExpiresAt = testIssuedAt.Add(time.Hour)
	return t
}

func TestIssuedFromSecretRejectsEditedSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token *issuedToken
		edit  func(secret *corev1.Secret)
	}{
		{"authorization edited", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.AuthorizationKey] = []byte("Bearer forged")
		}},
		{"authorization removed", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			delete(s.Data, authv1alpha1.AuthorizationKey)
		}},
		{"basic authorization edited", basicToken(testIssuedAt), func(s *corev1.Secret) {
			s.Data[authv1alpha1.AuthorizationKey] = []byte("Basic b3RoZXI6dXNlcg==")
		}},
		{"token-hash edited", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Annotations[authv1alpha1.TokenHashAnnotation] = hashOf("something else")
		}},
		{"token-hash removed", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			delete(s.Annotations, authv1alpha1.TokenHashAnnotation)
		}},
		{"authorization and token-hash edited together, access_token not", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.AuthorizationKey] = []byte("Bearer forged")
			s.Annotations[authv1alpha1.TokenHashAnnotation] = hashOf("Bearer forged")
		}},
		{"expires_at moved to the future", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.ExpiresAtKey] = []byte("2030-01-01T00:00:00Z")
		}},
		{"url pointed elsewhere", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.URLKey] = []byte("https://evil.example.com")
		}},
		{"bearer relabelled basic", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.TokenTypeKey] = []byte("basic")
		}},
		{"access_token removed on bearer", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			delete(s.Data, authv1alpha1.AccessTokenKey)
		}},
		{"access_token edited on bearer", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.AccessTokenKey] = []byte("forged")
		}},
		{"expires_at missing on bearer", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			delete(s.Data, authv1alpha1.ExpiresAtKey)
		}},
		{"expires_at not RFC 3339", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.ExpiresAtKey] = []byte("in an hour")
		}},
		{"unknown token_type", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.TokenTypeKey] = []byte("mac")
		}},
		{"token_type in capitals", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data[authv1alpha1.TokenTypeKey] = []byte("Bearer")
		}},
		{"token_type removed", basicToken(testIssuedAt), func(s *corev1.Secret) {
			delete(s.Data, authv1alpha1.TokenTypeKey)
		}},
		{"issued-at removed", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			delete(s.Annotations, authv1alpha1.TokenIssuedAtAnnotation)
		}},
		{"issued-at not a time", basicToken(testIssuedAt), func(s *corev1.Secret) {
			s.Annotations[authv1alpha1.TokenIssuedAtAnnotation] = "yesterday"
		}},
		{"all annotations stripped", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Annotations = nil
		}},
		{"all data stripped", bearerToken(testIssuedAt, time.Hour), func(s *corev1.Secret) {
			s.Data = nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			secret := publishedSecret(testConnection(), tc.token)
			g.Expect(issuedFromSecret(secret)).NotTo(BeNil(), "the unedited Secret must be trusted")

			tc.edit(secret)

			g.Expect(issuedFromSecret(secret)).To(BeNil())
		})
	}
}

func TestIssuedFromSecretNil(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(issuedFromSecret(nil)).To(BeNil())
	g.Expect(issuedFromSecret(&corev1.Secret{})).To(BeNil())
}

func TestTokenSecretData(t *testing.T) {
	t.Parallel()
	// inBerlin expires at the same instant, expressed in another zone: expires_at is still written in UTC.
	berlin := time.FixedZone("CET", 3600)
	inBerlin := bearerToken(testIssuedAt, time.Hour)
	inBerlin.ExpiresAt = inBerlin.ExpiresAt.In(berlin)

	tests := []struct {
		name  string
		token *issuedToken
		want  map[string]string
	}{
		{"bearer", bearerToken(testIssuedAt, time.Hour), map[string]string{
			authv1alpha1.AuthorizationKey: "Bearer " + testAccessToken,
			authv1alpha1.AccessTokenKey:   testAccessToken,
			authv1alpha1.TokenTypeKey:     authv1alpha1.TokenTypeBearer,
			authv1alpha1.ExpiresAtKey:     "2025-03-01T13:00:00Z",
			authv1alpha1.URLKey:           testSiteURL,
		}},
		{"bearer expiring in another zone", inBerlin, map[string]string{
			authv1alpha1.AuthorizationKey: "Bearer " + testAccessToken,
			authv1alpha1.AccessTokenKey:   testAccessToken,
			authv1alpha1.TokenTypeKey:     authv1alpha1.TokenTypeBearer,
			authv1alpha1.ExpiresAtKey:     "2025-03-01T13:00:00Z",
			authv1alpha1.URLKey:           testSiteURL,
		}},
		{"basic has no access_token or expires_at", basicToken(testIssuedAt), map[string]string{
			authv1alpha1.AuthorizationKey: testBasicAuthorization,
			authv1alpha1.TokenTypeKey:     authv1alpha1.TokenTypeBasic,
			authv1alpha1.URLKey:           testSiteURL,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			data := tokenSecretData(tc.token)

			got := map[string]string{}
			for k, v := range data {
				got[k] = string(v)
			}
			g.Expect(got).To(Equal(tc.want))
			for _, forbidden := range []string{"refresh_token", authv1alpha1.ClientSecretKey, authv1alpha1.PasswordKey,
				authv1alpha1.ClientIDKey, authv1alpha1.UsernameKey} {
				g.Expect(data).NotTo(HaveKey(forbidden))
			}
		})
	}
}

func TestTokenSecretLabelsKeepTheOperatorsOwn(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := withTemplate(testConnection(),
		map[string]string{
			authv1alpha1.ManagedByLabel:  "helm",
			authv1alpha1.ConnectionLabel: "someone-else",
			"team":                       "growth",
		},
		map[string]string{
			authv1alpha1.TokenIssuedAtAnnotation:   "2000-01-01T00:00:00Z",
			authv1alpha1.CredentialsHashAnnotation: "forged",
			authv1alpha1.ConnectionHashAnnotation:  "forged",
			authv1alpha1.TokenHashAnnotation:       "forged",
			"reloader.stakater.com/match":          "true",
		})
	tok := bearerToken(testIssuedAt, time.Hour)

	apply := tokenSecretApply(conn, tok)

	g.Expect(apply.Labels).To(Equal(map[string]string{
		authv1alpha1.ManagedByLabel:  authv1alpha1.ManagedByValue,
		authv1alpha1.ConnectionLabel: testConnectionName,
		"team":                       "growth",
	}))
	g.Expect(apply.Annotations).To(HaveKeyWithValue("reloader.stakater.com/match", "true"))
	g.Expect(apply.Annotations).To(HaveKeyWithValue(authv1alpha1.TokenIssuedAtAnnotation, "2025-03-01T12:00:00Z"))
	g.Expect(apply.Annotations).To(HaveKeyWithValue(authv1alpha1.CredentialsHashAnnotation, tok.CredentialsHash))
	g.Expect(apply.Annotations).To(HaveKeyWithValue(authv1alpha1.ConnectionHashAnnotation, tok.ConnectionHash))
	g.Expect(apply.Annotations).To(HaveKeyWithValue(authv1alpha1.TokenHashAnnotation, tokenHash(tokenSecretData(tok))))
	g.Expect(labelsSelectorManaged().Matches(labels.Set(apply.Labels))).To(BeTrue())
	// The Secret the template produced is still one the operator trusts and considers current.
	secret := secretFromApply(apply)
	g.Expect(issuedFromSecret(secret)).NotTo(BeNil())
	g.Expect(tokenSecretCurrent(secret, conn, tok)).To(BeTrue())
}

func TestTokenSecretCurrent(t *testing.T) {
	t.Parallel()
	templateLabels := map[string]string{"team": "growth"}
	templateAnnotations := map[string]string{"reloader.stakater.com/match": "true"}
	templated := func() *authv1alpha1.MauticConnection {
		return withTemplate(testConnection(), maps.Clone(templateLabels), maps.Clone(templateAnnotations))
	}

	tests := []struct {
		name string
		// conn is the connection the Secret was published for; edit may change it or the Secret afterwards.
		conn  func() *authv1alpha1.MauticConnection
		token *issuedToken
		edit  func(secret *corev1.Secret, conn *authv1alpha1.MauticConnection)
		want  bool
	}{
		{"identical bearer", testConnection, bearerToken(testIssuedAt, time.Hour), nil, true},
		{"identical basic", testConnection, basicToken(testIssuedAt), nil, true},
		{"identical with a template", templated, bearerToken(testIssuedAt, time.Hour), nil, true},
		{"a foreign label and annotation are tolerated", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.Labels["kustomize.toolkit.fluxcd.io/name"] = "apps"
				s.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
			}, true},
		{"authorization drifted", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.Data[authv1alpha1.AuthorizationKey] = []byte("Bearer forged")
			}, false},
		{"url drifted", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.Data[authv1alpha1.URLKey] = []byte("https://evil.example.com")
			}, false},
		{"expires_at removed", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) { delete(s.Data, authv1alpha1.ExpiresAtKey) }, false},
		{"managed-by label removed", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				delete(s.Labels, authv1alpha1.ManagedByLabel)
			}, false},
		{"connection label edited", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.Labels[authv1alpha1.ConnectionLabel] = "other"
			}, false},
		{"template label edited on the Secret", templated, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) { s.Labels["team"] = "sales" }, false},
		{"template annotation removed from the Secret", templated, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				delete(s.Annotations, "reloader.stakater.com/match")
			}, false},
		{"applied-hash removed", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				delete(s.Annotations, authv1alpha1.AppliedHashAnnotation)
			}, false},
		{"owner reference removed", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) { s.OwnerReferences = nil }, false},
		{"owner reference no longer the controller", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.OwnerReferences[0].Controller = nil
			}, false},
		{"owner reference to a predecessor with the same name", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(s *corev1.Secret, _ *authv1alpha1.MauticConnection) {
				s.OwnerReferences[0].UID = "00000000-0000-0000-0000-000000000000"
			}, false},
		{"template label added", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(_ *corev1.Secret, c *authv1alpha1.MauticConnection) {
				withTemplate(c, map[string]string{"team": "growth"}, nil)
			}, false},
		{"template label changed", templated, bearerToken(testIssuedAt, time.Hour),
			func(_ *corev1.Secret, c *authv1alpha1.MauticConnection) {
				c.Spec.TokenSecret.Template.Labels["team"] = "sales"
			}, false},
		{"template label removed", templated, bearerToken(testIssuedAt, time.Hour),
			func(_ *corev1.Secret, c *authv1alpha1.MauticConnection) { c.Spec.TokenSecret.Template.Labels = nil }, false},
		{"template annotation removed", templated, bearerToken(testIssuedAt, time.Hour),
			func(_ *corev1.Secret, c *authv1alpha1.MauticConnection) {
				c.Spec.TokenSecret.Template.Annotations = nil
			}, false},
		{"connection recreated under the same name", testConnection, bearerToken(testIssuedAt, time.Hour),
			func(_ *corev1.Secret, c *authv1alpha1.MauticConnection) { c.UID = "a-new-uid" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := tc.conn()
			secret := publishedSecret(conn, tc.token)
			if tc.edit != nil {
				tc.edit(secret, conn)
			}

			g.Expect(tokenSecretCurrent(secret, conn, tc.token)).To(Equal(tc.want))
		})
	}
}

func TestTokenSecretCurrentWithoutASecret(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(tokenSecretCurrent(nil, testConnection(), bearerToken(testIssuedAt, time.Hour))).To(BeFalse())
}

func TestTokenSecretCurrentAfterANewToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	old := bearerToken(testIssuedAt, time.Hour)
	secret := publishedSecret(conn, old)

	renewed := bearerToken(testIssuedAt.Add(40*time.Minute), time.Hour)
	renewed.AccessToken = "a-newer-token"
	renewed.Authorization = "Bearer a-newer-token"

	g.Expect(tokenSecretCurrent(secret, conn, renewed)).To(BeFalse())
	g.Expect(tokenSecretCurrent(publishedSecret(conn, renewed), conn, renewed)).To(BeTrue())
}

func TestTokenDataEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token *issuedToken
		edit  func(data map[string][]byte)
		want  bool
	}{
		{"identical bearer", bearerToken(testIssuedAt, time.Hour), nil, true},
		{"identical basic", basicToken(testIssuedAt), nil, true},
		{"an unrelated extra key", bearerToken(testIssuedAt, time.Hour), func(d map[string][]byte) {
			d["ca.crt"] = []byte("pem")
		}, true},
		{"authorization differs", bearerToken(testIssuedAt, time.Hour), func(d map[string][]byte) {
			d[authv1alpha1.AuthorizationKey] = []byte("Bearer other")
		}, false},
		{"url differs", basicToken(testIssuedAt), func(d map[string][]byte) {
			d[authv1alpha1.URLKey] = []byte("https://other.example.com")
		}, false},
		{"expires_at missing on bearer", bearerToken(testIssuedAt, time.Hour), func(d map[string][]byte) {
			delete(d, authv1alpha1.ExpiresAtKey)
		}, false},
		{"basic with a leftover access_token", basicToken(testIssuedAt), func(d map[string][]byte) {
			d[authv1alpha1.AccessTokenKey] = []byte(testAccessToken)
		}, false},
		{"basic with a leftover expires_at", basicToken(testIssuedAt), func(d map[string][]byte) {
			d[authv1alpha1.ExpiresAtKey] = []byte("2025-03-01T13:00:00Z")
		}, false},
		{"basic with an empty access_token", basicToken(testIssuedAt), func(d map[string][]byte) {
			d[authv1alpha1.AccessTokenKey] = nil
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			live := publishedSecret(testConnection(), tc.token)
			if tc.edit != nil {
				tc.edit(live.Data)
			}

			g.Expect(tokenDataEqual(live, tc.token)).To(Equal(tc.want))
		})
	}
}

func TestHashOfSeparatesParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b []string
	}{
		{"split point", []string{"ab", "c"}, []string{"a", "bc"}},
		{"empty part", []string{"a", ""}, []string{"a"}},
		{"order", []string{"a", "b"}, []string{"b", "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(hashOf(tc.a...)).NotTo(Equal(hashOf(tc.b...)))
			g.Expect(hashOf(tc.a...)).To(Equal(hashOf(tc.a...)))
			g.Expect(hashOf(tc.a...)).To(MatchRegexp(`^[0-9a-f]{32}$`))
		})
	}
}

func TestTemplateCannotSetTheOperatorsAnnotations(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	conn.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Template: &authv1alpha1.SecretTemplate{
		Annotations: map[string]string{authv1alpha1.AppliedHashAnnotation: "x", authv1alpha1.TokenHashAnnotation: "y", "team/owner": "growth"},
	}}
	tok := bearerToken(testIssuedAt, time.Hour)
	secret := publishedSecret(conn, tok)
	g.Expect(secret.Annotations).To(HaveKeyWithValue("team/owner", "growth"))
	g.Expect(secret.Annotations[authv1alpha1.AppliedHashAnnotation]).NotTo(Equal("x"))
	g.Expect(tokenSecretCurrent(secret, conn, tok)).To(BeTrue(), "a freshly published Secret is current")
	g.Expect(issuedFromSecret(secret)).NotTo(BeNil())
}
