# syntax=docker/dockerfile:1
# One image with both programs: `kudu` (masters, tablet servers, CLI, `kudu location`) and
# `kudu-operator` (the default entrypoint; the StatefulSets the operator builds set
# `command: [kudu]`). Build the whole image, or one role with --target:
#
#   docker build -t ghcr.io/kudu-operator/kudu-operator:0.1.0 .
#   docker build --target kudu -t ghcr.io/kudu-operator/kudu:0.1.0 .

ARG RUST_VERSION=1.89
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
# RocksDB (bundled C++) needs a C++ toolchain and libclang for bindgen; protoc is vendored.
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every workspace member's manifest and sources (Cargo resolves the whole workspace); no
# tests, virtualenvs or local state.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY client/Cargo.toml client/build.rs client/
COPY client/src client/src
COPY operator/Cargo.toml operator/
COPY operator/src operator/src
COPY e2e/Cargo.toml e2e/
COPY e2e/src e2e/src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kudu -p kudu-operator \
    && install -D -m 0755 target/release/kudu /out/kudu \
    && install -D -m 0755 target/release/kudu-operator /out/kudu-operator

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# `sh` (the masters' preStop hook) is in the base image; CA certificates for API servers
# behind public certificates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kudu \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kudu --shell /usr/sbin/nologin kudu \
    && install -d -o 10001 -g 10001 /var/lib/kudu
COPY --from=build /out/kudu /out/kudu-operator /usr/local/bin/
# Numeric, so Kubernetes can verify runAsNonRoot; pods set fsGroup 10001 for the volume.
USER 10001:10001
WORKDIR /var/lib/kudu

FROM runtime AS kudu
ENTRYPOINT ["kudu"]

FROM runtime AS kudu-operator
ENTRYPOINT ["kudu-operator"]
