// Package answers holds the JSON answers of the node suite's two programs, the Mautic test server's
// control API (test/node/mauticserver) and the workload (test/node/workload), so that the programs
// and the suite that reads them share one definition.
package answers

import "time"

// Counters is the Mautic test server's answer of GET /counters.
type Counters struct {
	// TokenRequests counts token-endpoint requests of every client, faults and failures included.
	TokenRequests int `json:"token_requests"`
	// TokenRequestsByClient counts them per client id.
	TokenRequestsByClient map[string]int `json:"token_requests_by_client"`
	// APIRequests counts /api requests (the workload's and the operator's verifications).
	APIRequests int `json:"api_requests"`
	// ReusedRefreshTokens counts refresh requests that presented an already rotated refresh token.
	ReusedRefreshTokens int `json:"reused_refresh_tokens"`
	// HeldAnswers counts token answers held by POST /hold, from the moment each hold began.
	HeldAnswers int `json:"held_answers"`
}

// Stats is the workload's answer of GET /stats.
type Stats struct {
	// Successes and Failures count the API requests answered 200 and the others.
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// LastFailure describes the latest failure.
	LastFailure string `json:"last_failure,omitempty"`
	// TokenChanges are the authorization file's contents as digests, the first one included.
	TokenChanges []Change `json:"token_changes"`
	// WatchChanges are the watch file's contents, the first one included.
	WatchChanges []Change `json:"watch_changes"`
}

// Change is a new content of a mounted file and when the workload first read it.
type Change struct {
	// At is when the workload first read the new content.
	At time.Time `json:"at"`
	// Value is the content (watch file) or the first 16 hex digits of its SHA-256 (token).
	Value string `json:"value"`
}
