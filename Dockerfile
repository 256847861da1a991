# kubefed, for users who build with Docker (or podman/buildah):
#   docker build -t REGISTRY/kubefed:0.1.0 .
# On machines without a daemon, `make image` builds the same contents into an OCI archive
# with umoci (deploy/image/build-oci.sh); docs/deploy.md says how to push either.

# Build: the release binary. protoc is needed by etcd-client's build script.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No .git in the build context: the commit comes from the build argument.
ARG KUBEFED_GIT_COMMIT=unknown
ENV KUBEFED_GIT_COMMIT=${KUBEFED_GIT_COMMIT}
RUN cargo build --release --locked --bin kubefed \
 && install -D -m 0755 target/release/kubefed /out/kubefed

# Runtime: glibc, libgcc and CA certificates only, no shell, running as UID 65532 (the
# manifests' runAsUser).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kubefed /usr/local/bin/kubefed
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kubefed"]
