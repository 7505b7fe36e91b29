# For engine users (`docker buildx build --platform linux/amd64,linux/arm64 .`). `make image` builds
# the same image without an engine (hack/image): the static manager binary as the only file, user
# 65532:65532, entrypoint /manager, no shell. Pass the same stamps as make:
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) .
FROM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOFLAGS= GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} GOAMD64=v1 GOARM64=v8.0 \
    go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X github.com/mautic-operator/mautic-operator/internal/version.Version=${VERSION} -X github.com/mautic-operator/mautic-operator/internal/version.Commit=${COMMIT}" \
    -o /manager ./cmd/manager

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.version=${VERSION} org.opencontainers.image.revision=${COMMIT} \
      org.opencontainers.image.source=https://github.com/mautic-operator/mautic-operator
COPY --from=build --chmod=0555 /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
