//go:build drawbridge_testloopback

package cli

// Built only into the bootstraps the Lambda tests run under the RIE, whose
// backends listen on loopback. Release builds (make lambda) never set the
// tag, and TestLambdaEgressDeniesLoopback proves a binary without it
// refuses loopback targets.
func init() { lambdaLoopbackAllowed = true }
