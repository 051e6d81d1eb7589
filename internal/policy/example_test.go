package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/policy"
)

func Example() {
	p, err := policy.Compile([]byte(`{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Sid": "OnlyGitHub", "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
	     "Resource": "execute-api:/*/*/forward",
	     "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.30.252.0/22", "2606:50c0::/32"]}}},
	    {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
	     "Resource": "execute-api:/*/*/forward"}
	  ]
	}`))
	if err != nil {
		panic(err)
	}
	for _, client := range []string{"192.30.252.7", "203.0.113.9"} {
		r := &policy.Request{Stage: "prod", Method: "POST", Path: "/forward", SourceIP: netip.MustParseAddr(client)}
		d := p.Evaluate(r)
		fmt.Println(client, d)
		if !d.Allowed() {
			arn := policy.ARN("eu-west-1", "123456789012", "abc123", r.Stage, r.Method, r.Path)
			fmt.Printf("%s\n", policy.DenyBody(arn, d.Explicit()))
		}
	}
	// Output:
	// 192.30.252.7 allow by statement 1
	// 203.0.113.9 explicit deny by statement 0 (Sid "OnlyGitHub")
	// {"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:********9012:abc123/prod/POST/forward with an explicit deny"}
}
