# drawbridge's container image: a static binary on an empty base, run as
# a user without privileges; no shell, no package manager, nothing else to
# patch. docs/install.md ("Container image") explains each choice.
#
#   docker build -t drawbridge --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
#
# `make image` builds the same image without Docker or a registry
# (tools/imagebuild reads this file), and internal/installtest runs it.
# Keep the final stage to what that tool knows: COPY --from=build (with
# --chown), USER, WORKDIR, VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT, CMD,
# ENV, LABEL; and the build stage's RUN steps to relative paths under its
# WORKDIR, which the tool maps to a scratch directory.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source edit does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# Set by BuildKit (docker buildx build --platform ...); empty, Go builds
# for the machine it runs on.
ARG TARGETOS
ARG TARGETARCH
# With `make release`'s flags: static (no cgo), no paths, no build id,
# the version and commit stamped.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -tags lambda.norpc -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X github.com/drawbridge/drawbridge/internal/cli.version=${VERSION} -X github.com/drawbridge/drawbridge/internal/cli.commit=${COMMIT}" \
      -o out/drawbridge ./cmd/drawbridge
# The user and group of the image: 65532, "nonroot" as in distroless.
RUN mkdir -p out/etc out/state && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\ndrawbridge:x:65532:65532:drawbridge:/var/lib/drawbridge:/sbin/nologin\n' > out/etc/passwd && \
    printf 'root:x:0:\ndrawbridge:x:65532:\n' > out/etc/group

FROM scratch
# TLS to backends, Redis and JWKS endpoints checks certificates against
# the system roots; Go reads this file.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/out/etc/passwd /src/out/etc/group /etc/
COPY --from=build /src/out/drawbridge /usr/bin/drawbridge
# A placeholder to replace (mount yours over it): the same starting
# config as the .deb's, with the state file in the volume below.
COPY --from=build /src/deploy/package/drawbridge.yaml /etc/drawbridge/drawbridge.yaml
# The state directory, owned by the user: the embedded driver's file
# (quota counts, queued webhook deliveries) must outlive the container.
COPY --from=build --chown=65532:65532 /src/out/state/ /var/lib/drawbridge/
USER 65532:65532
WORKDIR /var/lib/drawbridge
VOLUME ["/var/lib/drawbridge"]
# The public listener and the admin listener (/healthz, /readyz, /metrics)
# of the default config; the shipped config keeps admin on the
# container's own loopback.
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/bin/drawbridge", "health", "-c", "/etc/drawbridge/drawbridge.yaml"]
ENTRYPOINT ["/usr/bin/drawbridge"]
CMD ["serve", "-c", "/etc/drawbridge/drawbridge.yaml"]
