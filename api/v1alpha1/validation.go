package v1alpha1

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bounds of the duration fields, the same as the CRD's validation rules.
const (
	// MinDuration is the shortest renewBefore and refreshTokenLifetime.
	MinDuration = time.Second
	// MaxDuration is the longest renewBefore and refreshTokenLifetime: one year.
	MaxDuration = 8760 * time.Hour
	// DefaultRefreshTokenLifetime is Mautic's default refresh-token lifetime, 14 days.
	DefaultRefreshTokenLifetime = 14 * 24 * time.Hour
)

// Validate checks what the CRD's validation rules check, for objects the API server stored before
// those rules existed (or under an older CRD): the controller then stalls that one connection with
// the message, instead of acting on a spec it cannot read. Each problem names its fix.
func (c *MauticConnection) Validate() error {
	var problems []error
	spec := &c.Spec
	if strings.HasPrefix(strings.ToLower(spec.URL), "http://") && !spec.AllowInsecureHTTP {
		problems = append(problems, errors.New("spec.url uses plain http: use an https:// URL, or set spec.allowInsecureHTTP: true to send credentials unencrypted"))
	}
	if spec.Refresh != nil && spec.Refresh.RenewBefore != nil {
		if _, err := checkDuration(*spec.Refresh.RenewBefore); err != nil {
			problems = append(problems, fmt.Errorf("spec.refresh.renewBefore %w", err))
		}
	}
	if spec.RefreshTokenLifetime != nil {
		if _, err := checkDuration(*spec.RefreshTokenLifetime); err != nil {
			problems = append(problems, fmt.Errorf("spec.refreshTokenLifetime %w", err))
		}
	}
	tokenSecret, state := c.TokenSecretName(), c.StateSecretName()
	if tokenSecret == state {
		problems = append(problems, fmt.Errorf("spec.tokenSecret.name must not be %s: that Secret holds the refresh token, "+
			"which workloads must never mount; choose another name", state))
	}
	if tokenSecret == spec.CredentialsSecretRef.Name {
		problems = append(problems, fmt.Errorf("the token Secret %s must not be the credentials Secret: the operator would "+
			"overwrite it; choose another spec.tokenSecret.name", tokenSecret))
	}
	if spec.CredentialsSecretRef.Name == state {
		problems = append(problems, fmt.Errorf("spec.credentialsSecretRef must not name %s, the operator's own refresh-token Secret", state))
	}
	if tls := spec.TLS; tls != nil && tls.CASecretRef != nil {
		if tls.CASecretRef.Name == tokenSecret {
			problems = append(problems, fmt.Errorf("the token Secret %s must not be the CA Secret: the operator would "+
				"overwrite it; choose another spec.tokenSecret.name", tokenSecret))
		}
		if tls.CASecretRef.Name == state {
			problems = append(problems, fmt.Errorf("spec.tls.caSecretRef must not name %s, the operator's own refresh-token Secret", state))
		}
	}
	return errors.Join(problems...)
}

// checkDuration parses d and checks it against the bounds.
func checkDuration(d Duration) (time.Duration, error) {
	parsed, err := d.Parse()
	if err != nil {
		return 0, err
	}
	if parsed < MinDuration || parsed > MaxDuration {
		return 0, fmt.Errorf("%s must be between %s and %s (one year)", string(d), MinDuration, "8760h")
	}
	return parsed, nil
}

// RenewBefore returns spec.refresh.renewBefore; zero when unset or invalid (Validate reports it).
func (c *MauticConnection) RenewBefore() time.Duration {
	if c.Spec.Refresh == nil || c.Spec.Refresh.RenewBefore == nil {
		return 0
	}
	d, err := checkDuration(*c.Spec.Refresh.RenewBefore)
	if err != nil {
		return 0
	}
	return d
}

// RenewBeforePercentage returns spec.refresh.renewBeforePercentage; zero when unset (the policy's default).
func (c *MauticConnection) RenewBeforePercentage() int32 {
	if c.Spec.Refresh == nil || c.Spec.Refresh.RenewBeforePercentage == nil {
		return 0
	}
	return *c.Spec.Refresh.RenewBeforePercentage
}

// RefreshTokenLifetime returns spec.refreshTokenLifetime, or Mautic's default when unset or invalid.
func (c *MauticConnection) RefreshTokenLifetime() time.Duration {
	if c.Spec.RefreshTokenLifetime == nil {
		return DefaultRefreshTokenLifetime
	}
	d, err := checkDuration(*c.Spec.RefreshTokenLifetime)
	if err != nil {
		return DefaultRefreshTokenLifetime
	}
	return d
}
