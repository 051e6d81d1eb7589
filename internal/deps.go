// Package internal pins dependencies while the packages that use them are written.
// Delete once every dependency below is imported by real code.
package internal

import (
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/goccy/go-yaml"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/time/rate"
)
