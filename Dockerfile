# syntax=docker/dockerfile:1
#
# highwater container image.
#
#   docker build -t highwater --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm highwater version
#   docker run -v highwater:/var/lib/highwater -p 9090:9090 highwater run \
#     --brokers kafka:9092 --registry http://registry:8081 --topics features,nodes \
#     --sink duckdb:///var/lib/highwater/warehouse.duckdb
#
# The buffer (HIGHWATER_BUFFER_DIR) and a DuckDB file belong on the volume at
# /var/lib/highwater. Metrics, /healthz and /readyz are on :9090
# (HIGHWATER_METRICS_ADDR), where the health check looks.
#
# Build stage: cgo is required because the DuckDB writer links DuckDB, whose
# prebuilt static libraries come with the duckdb-go modules (nothing to
# install). The golang image has gcc and g++ for the link.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/highwater ./cmd/highwater \
 && mkdir -p /out/data/buffer

# Runtime stage: DuckDB is C++ linked against glibc and libstdc++, so the
# image is Debian slim (same release as the builder), not distroless/static
# or Alpine. ca-certificates for TLS to Kafka, the registry, PostgreSQL and S3.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/highwater /usr/local/bin/highwater
# The buffer (Badger) and a DuckDB warehouse file live under /var/lib/highwater,
# owned by the unprivileged user; a fresh named volume inherits that owner.
COPY --from=build --chown=65532:65532 /out/data /var/lib/highwater
USER 65532:65532
WORKDIR /var/lib/highwater
# HOME: user 65532 has no passwd entry, and DuckDB looks for ~/.duckdb.
ENV HOME=/var/lib/highwater \
    HIGHWATER_BUFFER_DIR=/var/lib/highwater/buffer \
    HIGHWATER_METRICS_ADDR=:9090 \
    HIGHWATER_LOG_FORMAT=json
VOLUME ["/var/lib/highwater"]
# Prometheus /metrics, /healthz and /readyz.
EXPOSE 9090
# `highwater probe` asks /healthz on HIGHWATER_METRICS_ADDR's port: no curl
# needed. If you move the metrics server with --metrics-addr instead of the
# env variable, override the health check too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["highwater", "probe"]
ENTRYPOINT ["highwater"]
CMD ["run"]
