// Package token holds the pure refresh policy of a MauticConnection: when a token is renewed,
// the jitter that spreads renewals apart, the retry backoff, and the chain of policies that
// decides whether a new token is needed and why. It does no I/O and reads no clock.
package token
