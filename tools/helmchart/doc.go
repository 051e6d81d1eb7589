// Package helmchart holds the tests of the Helm chart in
// deploy/helm/drawbridge (docs/install.md, "Helm chart"): helm lint and
// helm template through Helm's own Go packages, and every rendered object
// strict-decoded into the Kubernetes API types of the pinned k8s.io/api
// module. It lives in the tools module so that Helm and the Kubernetes
// libraries never become dependencies of drawbridge itself.
package helmchart
