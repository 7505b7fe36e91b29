package controller

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// defaultAccessTokenLifetime is assumed when a token answer carries no expires_in (Mautic's default).
const defaultAccessTokenLifetime = time.Hour

// credentials are the values read from the credentials Secret for one grant.
type credentials struct {
	clientID     string
	clientSecret string
	username     string
	password     string
	// seed is the optional refresh_token key of an AuthorizationCode connection.
	seed string
}

// requiredKeys lists the credentials Secret keys a grant needs.
func requiredKeys(grant authv1alpha1.Grant) []string {
	switch grant {
	case authv1alpha1.GrantBasic:
		return []string{authv1alpha1.UsernameKey, authv1alpha1.PasswordKey}
	case authv1alpha1.GrantPassword:
		return []string{authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey, authv1alpha1.UsernameKey, authv1alpha1.PasswordKey}
	default:
		return []string{authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey}
	}
}

// credentialsFrom reads the grant's keys from secret and names those that are missing or empty.
func credentialsFrom(grant authv1alpha1.Grant, secret *corev1.Secret) (credentials, []string) {
	var missing []string
	value := func(key string) string {
		v := strings.TrimSpace(string(secret.Data[key]))
		if v == "" {
			missing = append(missing, key)
		}
		return v
	}
	password := func() string {
		// A password may legitimately start or end with spaces: keep it as it is.
		v := string(secret.Data[authv1alpha1.PasswordKey])
		if v == "" {
			missing = append(missing, authv1alpha1.PasswordKey)
		}
		return v
	}
	var creds credentials
	switch grant {
	case authv1alpha1.GrantBasic:
		creds.username = value(authv1alpha1.UsernameKey)
		creds.password = password()
	case authv1alpha1.GrantPassword:
		creds.clientID = value(authv1alpha1.ClientIDKey)
		creds.clientSecret = value(authv1alpha1.ClientSecretKey)
		creds.username = value(authv1alpha1.UsernameKey)
		creds.password = password()
	case authv1alpha1.GrantAuthorizationCode:
		creds.clientID = value(authv1alpha1.ClientIDKey)
		creds.clientSecret = value(authv1alpha1.ClientSecretKey)
		creds.seed = strings.TrimSpace(string(secret.Data[authv1alpha1.RefreshTokenKey]))
	default:
		creds.clientID = value(authv1alpha1.ClientIDKey)
		creds.clientSecret = value(authv1alpha1.ClientSecretKey)
	}
	return creds, missing
}

// hash identifies the credentials without revealing them.
func (c credentials) hash(grant authv1alpha1.Grant) string {
	return hashOf(string(grant), c.clientID, c.clientSecret, c.username, c.password, c.seed)
}

// connectionHash identifies where and how tokens are requested (the grant, the normalised spec.url,
// spec.tokenPath and spec.scopes): a change of any of them mints a new token.
func connectionHash(conn *authv1alpha1.MauticConnection, baseURL string) string {
	return hashOf(append([]string{string(conn.EffectiveGrant()), baseURL, conn.Spec.TokenPath}, conn.Spec.Scopes...)...)
}

// refreshTokenLifetime returns spec.refreshTokenLifetime, or Mautic's default.
func refreshTokenLifetime(conn *authv1alpha1.MauticConnection) time.Duration {
	return conn.RefreshTokenLifetime()
}

// keyList renders keys for a message: "client_id and client_secret".
func keyList(keys []string) string {
	switch len(keys) {
	case 0:
		return ""
	case 1:
		return keys[0]
	default:
		return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1]
	}
}

// caCertFrom returns the PEM bundle of a CA Secret, or what is wrong with it.
func caCertFrom(secret *corev1.Secret) ([]byte, string) {
	if secret == nil {
		return nil, "not found"
	}
	bundle := secret.Data[authv1alpha1.CACertKey]
	if len(bundle) == 0 {
		return nil, "has no key " + authv1alpha1.CACertKey
	}
	rest, found := bundle, false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, "holds a certificate that does not parse (" + err.Error() + ")"
		}
		found = true
	}
	if !found {
		return nil, "holds no PEM certificate in key " + authv1alpha1.CACertKey
	}
	return bundle, ""
}

// verifyPath returns spec.verify.path, or the default check.
func verifyPath(conn *authv1alpha1.MauticConnection) string {
	if conn.Spec.Verify != nil && conn.Spec.Verify.Path != "" {
		return conn.Spec.Verify.Path
	}
	return mautic.DefaultVerifyPath
}

// renewalPolicy converts spec.refresh into the policy's terms.
func renewalPolicy(conn *authv1alpha1.MauticConnection) token.RenewalPolicy {
	return token.RenewalPolicy{RenewBefore: conn.RenewBefore(), RenewBeforePercentage: conn.RenewBeforePercentage()}
}

// controllerUID returns the UID of obj's controller owner, or "".
func controllerUID(obj metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return ref.UID
	}
	return ""
}
