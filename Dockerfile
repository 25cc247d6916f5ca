# syntax=docker/dockerfile:1

# promemoria: a static binary on a distroless base, run as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t promemoria .
#   docker run --rm -e NATS_URL=nats://nats.example:4222 -p 8080:8080 promemoria
#
# Without NATS_URL the container runs its embedded NATS server with JetStream
# and keeps its data in the volume /data. See docs/deploy.md.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Dependencies first, so that a change of source does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath \
      -ldflags "-s -w -X github.com/promemoria/promemoria/app.Version=${VERSION}" \
      -o /out/promemoria ./cmd/promemoria \
 && /out/promemoria --version \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/promemoria /promemoria
# The embedded server's data directory, writable by the non-root user
# (65532). Unused when NATS_URL points to an external server.
COPY --from=build --chown=65532:65532 /out/data /data
ENV PROMEMORIA_DATA_DIR=/data \
    PROMEMORIA_HTTP_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/promemoria", "serve"]
