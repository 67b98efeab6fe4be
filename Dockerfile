# syntax=docker/dockerfile:1
# The tenant-gateway image for a normal Docker/BuildKit + registry setup.
# It is the same image that hack/images/build makes here without Docker
# (localhost/tenant-gateway:dev): the release binary, glibc, non-root uid 65532,
# read-only root filesystem friendly (writes nothing outside mounted volumes).
#
#   docker build -t REGISTRY/tenant-gateway:TAG .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tenant-gateway --bin tenant-gateway \
 && install -m 0755 target/release/tenant-gateway /tenant-gateway

# distroless/cc: glibc, libgcc, CA certificates, /etc/passwd with nonroot (65532)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /tenant-gateway /usr/local/bin/tenant-gateway
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tenant-gateway"]
