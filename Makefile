# Build targets. `go build ./cmd/drawbridge` is all a local binary needs;
# this file exists for the release files (docs/install.md), the Lambda
# deployment packages (docs/lambda.md) and the performance tools
# (docs/performance.md).

GO      ?= go
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# Expanded once, here: a commit made while a long build runs must not give
# its files two versions.
VERSION := $(VERSION)
COMMIT  := $(COMMIT)
ARCHES  := arm64 amd64

# Reproducible: no paths (-trimpath), no build id or VCS stamp that would
# differ between two checkouts of one commit (the commit is passed in -X
# instead), no cgo, no symbol tables. lambda.norpc leaves out the RPC shim
# that only the retired go1.x runtime used.
LDFLAGS := -s -w -buildid= \
	-X github.com/drawbridge/drawbridge/internal/cli.version=$(VERSION) \
	-X github.com/drawbridge/drawbridge/internal/cli.commit=$(COMMIT)
GOBUILD := CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -buildvcs=false -ldflags='$(LDFLAGS)'
BUILD   := GOOS=linux $(GOBUILD)

# Release files (docs/install.md, "Packages and archives").
PLATFORMS  ?= linux/amd64 linux/arm64 darwin/arm64
DEB_ARCHES ?= amd64 arm64
RELEASE    ?= dist/release
# Every file time inside the archives and packages: the last commit's, so
# two builds of one commit agree.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
SOURCE_DATE_EPOCH := $(SOURCE_DATE_EPOCH)
export SOURCE_DATE_EPOCH
# A Debian version: v1.2.3 -> 1.2.3, v1.2.3-4-gabc (4 commits after the
# tag) -> 1.2.3+4.gabc (sorts after 1.2.3), an untagged commit (a bare
# hash, even one starting with a digit) 123abc -> 0.0.0+git123abc.
DEB_VERSION ?= $(shell v=$$(echo '$(VERSION)' | sed 's/^v//'); case "$$v" in ([0-9]*.*) echo "$$v" | sed 's/-/+/; s/-/./g';; (*) echo "0.0.0+git$$v";; esac)
DEB_VERSION := $(DEB_VERSION)
# nFPM, pinned in tools/go.mod (its own module, so the program's go.mod
# does not grow by nFPM's dependencies).
NFPM       ?= dist/tools/nfpm
# Archive members: sorted, owned by 0/0 with no names, dated
# SOURCE_DATE_EPOCH, in GNU-format headers (pax headers would add the
# build's atime and ctime).
TAR        := tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner --format=gnu

.PHONY: image release release-check lambda lambda-check bench bench-ir clean FORCE

## release: dist/release/ with drawbridge_VERSION_OS_ARCH.tar.gz for each of
## PLATFORMS, drawbridge_DEBVERSION_ARCH.deb for each of DEB_ARCHES, the
## Lambda zips as drawbridge_VERSION_lambda_ARCH.zip, and SHA256SUMS. Needs
## no network once the module cache holds the modules of go.mod and
## tools/go.mod (`go mod download && go -C tools mod download`).
release: $(ARCHES:%=dist/bootstrap-%.zip) $(NFPM)
	rm -rf $(RELEASE)
	mkdir -p $(RELEASE)/stage
	set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=drawbridge_$(VERSION)_$${os}_$${arch}; dir=$(RELEASE)/stage/$$name; \
		mkdir -p $$dir; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$dir/drawbridge ./cmd/drawbridge; \
		cp README.md $(wildcard LICENSE NOTICE) $$dir/; \
		chmod 644 $$dir/*; chmod 755 $$dir $$dir/drawbridge; \
		$(TAR) -C $(RELEASE)/stage -cf - $$name | gzip -9n > $(RELEASE)/$$name.tar.gz; \
	done
	set -e; for a in $(DEB_ARCHES); do \
		bin=$(RELEASE)/stage/drawbridge_$(VERSION)_linux_$$a/drawbridge; \
		[ -f $$bin ] || { echo "release: a .deb for $$a needs linux/$$a in PLATFORMS"; exit 1; }; \
		DEB_ARCH=$$a DEB_VERSION='$(DEB_VERSION)' BINARY=$$bin \
			$(NFPM) package --config deploy/package/nfpm.yaml --packager deb \
			--target $(RELEASE)/drawbridge_$(DEB_VERSION)_$$a.deb >/dev/null; \
	done
	set -e; for a in $(ARCHES); do cp dist/bootstrap-$$a.zip $(RELEASE)/drawbridge_$(VERSION)_lambda_$$a.zip; done
	rm -rf $(RELEASE)/stage
	cd $(RELEASE) && sha256sum * > SHA256SUMS && cat SHA256SUMS

$(NFPM): tools/go.mod tools/go.sum
	$(GO) -C tools build -trimpath -o $(abspath $(NFPM)) github.com/goreleaser/nfpm/v2/cmd/nfpm

## image: dist/drawbridge-image.tar, the Dockerfile's image built without
## Docker, BuildKit or a registry by tools/imagebuild, which reads the
## Dockerfile (docs/install.md, "Container image"); `docker load -i` or
## `podman load -i` takes it. Offline once the module caches are full.
IMAGEBUILD ?= dist/tools/imagebuild
image: $(IMAGEBUILD)
	$(IMAGEBUILD) -f Dockerfile -C . -t drawbridge:$(VERSION) \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -o dist/drawbridge-image.tar
	@ls -l dist/drawbridge-image.tar

$(IMAGEBUILD): tools/go.mod tools/go.sum tools/imagebuild/main.go
	$(GO) -C tools build -trimpath -o $(abspath $(IMAGEBUILD)) ./imagebuild

## release-check: build HEAD's release a second time, in another directory
## with an empty build cache, and compare every file byte for byte with
## `make release`'s. Run it on a clean tree, as lambda-check.
release-check: release
	@tmp=$$(mktemp -d) && trap 'chmod -R u+w '$$tmp'; rm -rf '$$tmp EXIT && \
	git archive HEAD | tar -x -C $$tmp && \
	GOCACHE=$$tmp/.cache $(MAKE) -s -C $$tmp release VERSION=$(VERSION) COMMIT=$(COMMIT) \
		SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) PLATFORMS='$(PLATFORMS)' DEB_ARCHES='$(DEB_ARCHES)' ARCHES='$(ARCHES)' >/dev/null && \
	diff -r $(RELEASE) $$tmp/$(RELEASE) && echo "reproducible: both builds gave identical release files"

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
