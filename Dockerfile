# syntax=docker/dockerfile:1
#
# One image with every Chasqui binary: chasqui-central, chasqui-edge, the
# chasqui CLI, the chasqui-sim instrument simulator, and grpc-health-probe
# for healthchecks (the runtime image has no shell or curl). Static
# binaries (CGO_ENABLED=0) on distroless, running as the nonroot user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#                --build-arg COMMIT=$(git rev-parse --short=12 HEAD) -t chasqui .
#   docker run --rm chasqui /usr/local/bin/chasqui-edge -h

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src

# Pinned; `go install pkg@version` ignores any go.work.
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.61
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    GOBIN=/out go install -ldflags "-s -w" \
        github.com/grpc-ecosystem/grpc-health-probe@${GRPC_HEALTH_PROBE_VERSION}

# Module downloads first, so that a source change does not re-download.
COPY go.work go.work.sum ./
COPY gen/go.mod gen/go.sum gen/
COPY internal/go.mod internal/go.sum internal/
COPY central/go.mod central/go.sum central/
COPY edge/go.mod edge/go.sum edge/
COPY systest/go.mod systest/go.sum systest/
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    pkg=github.com/chasqui/chasqui/internal/version && \
    go build -ldflags "-s -w -X ${pkg}.Version=${VERSION} -X ${pkg}.Commit=${COMMIT}" -o /out/ \
        ./central/cmd/chasqui-central \
        ./edge/cmd/chasqui-edge \
        ./edge/cmd/chasqui \
        ./edge/cmd/chasqui-sim && \
    mkdir -p /data/var/lib/chasqui

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="chasqui" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/chasqui/chasqui"
COPY --from=build /out/ /usr/local/bin/
# The edge's data directory, owned by nonroot (65532) so that a named volume
# mounted here starts with that owner.
COPY --from=build --chown=65532:65532 /data/var/lib/chasqui /var/lib/chasqui
USER nonroot:nonroot
# central 7443/7480, edge 7444/7481 (gRPC/HTTP).
EXPOSE 7443 7444 7480 7481
# Each compose service names its binary; the default is the edge, configured
# by CHASQUI_* environment variables.
CMD ["/usr/local/bin/chasqui-edge"]
