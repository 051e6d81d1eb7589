# Build targets. `go build ./cmd/drawbridge` is all a local binary needs;
# this file exists for the Lambda deployment packages (docs/lambda.md) and
# the performance tools (docs/performance.md).

GO      ?= go
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
ARCHES  := arm64 amd64

# Reproducible: no paths (-trimpath), no build id or VCS stamp that would
# differ between two checkouts of one commit (the commit is passed in -X
# instead), no cgo, no symbol tables. lambda.norpc leaves out the RPC shim
# that only the retired go1.x runtime used.
LDFLAGS := -s -w -buildid= \
	-X github.com/drawbridge/drawbridge/internal/cli.version=$(VERSION) \
	-X github.com/drawbridge/drawbridge/internal/cli.commit=$(COMMIT)
BUILD   := CGO_ENABLED=0 GOOS=linux $(GO) build -tags lambda.norpc -trimpath -buildvcs=false -ldflags='$(LDFLAGS)'

.PHONY: lambda lambda-check bench bench-ir clean FORCE

## bench: drawbridge side by side with nginx, a bare Go proxy and a direct
## connection (bench/run; installs wrk and nginx when missing)
bench:
	bench/run

## bench-ir: callgrind instructions per operation of the guard chain
## (stable where wall-clock benchmarks are not); PKG= and BENCH= pick others
bench-ir:
	bench/ir $(or $(PKG),./internal/gateway) $(or $(BENCH),BenchmarkGuards)

## lambda: dist/bootstrap-arm64.zip and dist/bootstrap-amd64.zip for provided.al2023
lambda: $(ARCHES:%=dist/bootstrap-%.zip)
	@cd dist && sha256sum $(ARCHES:%=bootstrap-%.zip) | tee SHA256SUMS
	@ls -l $(ARCHES:%=dist/bootstrap-%.zip)

dist/bootstrap-%.zip: FORCE
	@mkdir -p dist/$*
	GOARCH=$* $(BUILD) -o dist/$*/bootstrap ./cmd/drawbridge
	$(GO) run ./internal/tools/lambdazip -o $@ dist/$*/bootstrap

## lambda-check: build HEAD a second time, in another directory with an empty
## build cache, and compare the zips byte for byte with `make lambda`'s.
## Run it on a clean tree: the second build is of HEAD, not of edits.
lambda-check: lambda
	@tmp=$$(mktemp -d) && trap 'chmod -R u+w '$$tmp'; rm -rf '$$tmp EXIT && \
	git archive HEAD | tar -x -C $$tmp && \
	GOCACHE=$$tmp/.cache $(MAKE) -s -C $$tmp lambda VERSION=$(VERSION) COMMIT=$(COMMIT) >/dev/null && \
	for a in $(ARCHES); do \
		cmp dist/bootstrap-$$a.zip $$tmp/dist/bootstrap-$$a.zip || { echo "bootstrap-$$a.zip is not reproducible"; exit 1; }; \
	done && echo "reproducible: both builds gave identical zips"

clean:
	rm -rf dist
