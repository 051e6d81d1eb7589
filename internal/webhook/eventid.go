package webhook

import (
	"encoding/json"
	"net/http"
	"strings"
)

// maxEventID bounds an id taken from a request, so that a dedupe store
// never keys on a megabyte of header.
const maxEventID = 256

// EventID returns the provider's delivery id for deduplicating retries of
// one event, or "" if the request carries none (then the route's
// delivery.id_header, if any, is the only key).
//
//   - github: X-GitHub-Delivery (unchanged on redelivery).
//   - gitlab: Idempotency-Key (same on retries, and equal to webhook-id
//     under signing tokens), else X-Gitlab-Event-UUID.
//   - bitbucket: X-Request-UUID (Cloud), else X-Request-Id (Data Center).
//   - standard: webhook-id, or svix-id when the request is signed with the
//     svix-* names (the id of the set Verify checked).
//   - stripe: the "id" (evt_…) of the JSON body; Stripe sends no id header
//     and re-signs each retry with a new t=, so only the body identifies it.
//   - slack: the "event_id" of an Events API JSON body.
//
// Only the stripe, slack and standard ids are covered by the signature.
// GitHub's delivery id is not: a captured delivery replayed with a fresh id
// still verifies, so a dedupe that must stop replays should also key on a
// hash of the body. Call EventID only after Verify succeeded, so that a
// forged request never reaches (or poisons) the dedupe store.
func EventID(provider string, h http.Header, body []byte) string {
	var id string
	switch strings.ToLower(provider) {
	case "github":
		id = h.Get("X-GitHub-Delivery")
	case "gitlab":
		if id = h.Get("Idempotency-Key"); id == "" {
			id = h.Get("X-Gitlab-Event-UUID")
		}
	case "bitbucket":
		if id = h.Get("X-Request-UUID"); id == "" {
			id = h.Get("X-Request-Id")
		}
	case "standard":
		id = h.Get(stdHeaders(h).id.key)
	case "stripe":
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &ev) == nil {
			id = ev.ID
		}
	case "slack":
		var ev struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(body, &ev) == nil {
			id = ev.EventID
		}
	}
	if len(id) > maxEventID {
		return ""
	}
	return id
}
