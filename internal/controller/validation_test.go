package controller_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/scheme"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// validConnection is a connection every validation rule accepts.
func validConnection(ns string) *authv1alpha1.MauticConnection {
	return &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.ConnectionName, Namespace: ns},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  "https://mautic.example.com",
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: testenv.CredentialsName},
		},
	}
}

// Every validation rule of the CRD, with an object it refuses and the message a user sees; and the
// objects next to its edges that it accepts. Checked with dry-run creates against the API server.
func TestCRDValidationRules(t *testing.T) {
	t.Parallel()
	useControlPlane(t)
	ns := controlPlane.CreateNamespace(t, "validation-")
	duration := func(value string) *authv1alpha1.Duration { return ptr.To(authv1alpha1.Duration(value)) }
	tests := []struct {
		name        string
		mutate      func(*authv1alpha1.MauticConnection)
		wantMessage string // "" when the object is accepted
	}{
		{name: "a valid connection", mutate: func(*authv1alpha1.MauticConnection) {}},
		{name: "plain http", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.URL = "http://mautic.example.com" },
			wantMessage: "spec.url uses plain http: use an https:// URL, or set spec.allowInsecureHTTP: true"},
		{name: "plain http allowed", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.URL, c.Spec.AllowInsecureHTTP = "http://mautic.example.com", true
		}},
		{name: "not a URL", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.URL = "https://" },
			wantMessage: "spec.url must be an absolute http(s) URL such as https://mautic.example.com"},
		{name: "user info in the URL", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.URL = "https://admin:pw@mautic.example.com" },
			wantMessage: "spec.url must not contain a user or password"},
		{name: "query in the URL", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.URL = "https://mautic.example.com/?a=b" },
			wantMessage: "spec.url must not have a query or fragment"},
		{name: "token path without a slash", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.TokenPath = "oauth/token" },
			wantMessage: "spec.tokenPath must be a path such as /oauth/v2/token"},
		{name: "verify path outside the API", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.Verify = &authv1alpha1.VerifySpec{Path: "/s/login"}
		}, wantMessage: "spec.verify.path must be a Mautic API path such as /api/users/self"},
		{name: "both renewBefore and a percentage", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBefore: duration("10m"), RenewBeforePercentage: ptr.To[int32](20)}
		}, wantMessage: "set either spec.refresh.renewBefore or spec.refresh.renewBeforePercentage, not both"},
		{name: "renewBefore in words", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBefore: duration("ten minutes")}
		}, wantMessage: "spec.refresh.renewBefore must be a duration in hours, minutes and seconds such as 10m"},
		{name: "renewBefore of zero", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBefore: duration("0s")}
		}, wantMessage: "spec.refresh.renewBefore must be between 1s and 8760h"},
		{name: "renewBefore of 1h30m", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBefore: duration("1h30m")}
		}},
		{name: "refreshTokenLifetime in days", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.RefreshTokenLifetime = duration("14d") },
			wantMessage: "spec.refreshTokenLifetime must be a duration in hours, minutes and seconds such as 336h for 14 days (days are not a unit)"},
		{name: "refreshTokenLifetime over a year", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.RefreshTokenLifetime = duration("8761h") },
			wantMessage: "spec.refreshTokenLifetime must be between 1s and 8760h"},
		{name: "refreshTokenLifetime of a year", mutate: func(c *authv1alpha1.MauticConnection) { c.Spec.RefreshTokenLifetime = duration("8760h") }},
		{name: "token Secret named as the state Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Name: c.Name + authv1alpha1.StateSecretSuffix}
		}, wantMessage: "spec.tokenSecret.name must not be <metadata.name>-oauth-state"},
		{name: "token Secret named as the credentials Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Name: testenv.CredentialsName}
		}, wantMessage: "the token Secret (spec.tokenSecret.name, default <metadata.name>-token) must not be the credentials Secret"},
		{name: "default token Secret name is the credentials Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.CredentialsSecretRef.Name = c.Name + "-token"
		}, wantMessage: "must not be the credentials Secret"},
		{name: "token Secret named as the CA Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.TLS = &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: c.Name + "-token"}}
		}, wantMessage: "must not be the CA Secret"},
		{name: "credentials in the state Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.CredentialsSecretRef.Name = c.Name + authv1alpha1.StateSecretSuffix
		}, wantMessage: "spec.credentialsSecretRef and spec.tls.caSecretRef must not name <metadata.name>-oauth-state"},
		{name: "CA in the state Secret", mutate: func(c *authv1alpha1.MauticConnection) {
			c.Spec.TLS = &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: c.Name + authv1alpha1.StateSecretSuffix}}
		}, wantMessage: "spec.credentialsSecretRef and spec.tls.caSecretRef must not name <metadata.name>-oauth-state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := validConnection(ns)
			tc.mutate(conn)
			err := k8sClient.Create(context.Background(), conn, client.DryRunAll)
			if tc.wantMessage == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(conn.Validate()).To(Succeed(), "the controller's own check agrees")
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantMessage)))
		})
	}
}

// A connection stored before a validation rule existed (here: refreshTokenLifetime "14d", which
// metav1.Duration could not even decode) stalls itself with a reason that names the fix, and every
// other connection, in any namespace, is reconciled as usual. Not parallel: it replaces the CRD's
// schema for a moment.
func TestAStoredInvalidConnectionStallsOnlyItself(t *testing.T) {
	useControlPlane(t)
	g := NewWithT(t)
	ctx := context.Background()
	crdScheme := scheme.New()
	g.Expect(apiextensionsv1.AddToScheme(crdScheme)).To(Succeed())
	crds, err := client.New(controlPlane.Config, client.Options{Scheme: crdScheme})
	g.Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(crds.Get(ctx, client.ObjectKey{Name: testenv.CRDName}, crd)).To(Succeed())
	original := crd.DeepCopy()

	// An older CRD without the rule.
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	lifetime := spec.Properties["refreshTokenLifetime"]
	lifetime.XValidations = nil
	spec.Properties["refreshTokenLifetime"] = lifetime
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	g.Expect(crds.Update(ctx, crd)).To(Succeed())
	restored := false
	restore := func() {
		if restored {
			return
		}
		current := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(crds.Get(ctx, client.ObjectKey{Name: testenv.CRDName}, current)).To(Succeed())
		current.Spec = original.Spec
		g.Expect(crds.Update(ctx, current)).To(Succeed())
		restored = true
	}
	defer restore()

	bad := newEnv(t)
	bad.stop()
	bad.createCredentials(bad.clientCredentials())
	badConn := bad.newConnection()
	g.Eventually(func() error {
		conn := badConn.DeepCopy()
		conn.Spec.RefreshTokenLifetime = ptr.To[authv1alpha1.Duration]("14d")
		return k8sClient.Create(ctx, conn)
	}).WithTimeout(10*time.Second).Should(Succeed(), "the older CRD accepts it")
	restore()

	good := newEnv(t)
	good.stop()
	good.createCredentials(good.clientCredentials())
	good.createConnection(good.newConnection())

	// One manager for both namespaces, as a cluster-wide install is.
	stop := controlPlane.StartManager(t, bad.Namespace, func(o *operator.Options) { o.Namespaces = []string{bad.Namespace, good.Namespace} })
	defer stop()
	good.waitReady(authv1alpha1.TokenValidReason)
	conn := bad.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.InvalidSpecReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring(`spec.refreshTokenLifetime "14d" is not a duration in hours, minutes and seconds such as 10m or 336h`))
	g.Expect(bad.Mautic.TokenRequests()).To(BeZero())
}
