#!/usr/bin/env bash
# Builds the kubefed container image without a daemon or a registry: an OCI image
# layout (and an OCI archive of it) holding only the kubefed binary, the shared
# libraries it links (as `ldd` lists them: glibc, libm, libgcc_s and the loader) and a
# non-root user, built with umoci (Debian package `umoci`).
#
#   deploy/image/build-oci.sh BINARY OUT TAG
#     BINARY  the kubefed binary (`make image` passes target/release/kubefed)
#     OUT     the OCI layout directory to (re)create; OUT.tar is the OCI archive
#     TAG     the image tag, e.g. 0.1.0
#
# Push it with skopeo: skopeo copy oci-archive:OUT.tar docker://REGISTRY/kubefed:TAG
set -euo pipefail

bin=${1:?usage: build-oci.sh BINARY OUT TAG}
out=${2:?usage: build-oci.sh BINARY OUT TAG}
tag=${3:?usage: build-oci.sh BINARY OUT TAG}
command -v umoci >/dev/null || { echo "umoci not found: apt-get install -y umoci" >&2; exit 1; }
[ -x "$bin" ] || { echo "$bin is not an executable" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out" "$out.tar"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$tag"
umoci unpack --rootless --image "$out:$tag" "$work/bundle"
root="$work/bundle/rootfs"

install -D -m 0755 "$bin" "$root/usr/local/bin/kubefed"
# The libraries at the paths the binary asks for, so the image's own loader finds them.
# (`lib => /path (addr)` lines and the loader's own `/path (addr)` line.)
ldd "$bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
# A user for tools that look the UID up; the UID matches the manifests' runAsUser.
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" > "$root/etc/passwd"
echo "nonroot:x:65532:" > "$root/etc/group"
mkdir -p "$root/home/nonroot"

umoci repack --image "$out:$tag" "$work/bundle"
umoci config --image "$out:$tag" \
  --config.entrypoint /usr/local/bin/kubefed \
  --config.user 65532:65532 \
  --config.workingdir /home/nonroot \
  --config.env PATH=/usr/local/bin \
  --config.label org.opencontainers.image.title=kubefed \
  --config.label "org.opencontainers.image.version=$tag" \
  --os linux --architecture amd64 \
  --author kubefed
umoci gc --layout "$out"
# An OCI archive is the layout in one tar file, with oci-layout and index.json at its root.
tar -C "$out" -cf "$out.tar" .
echo "image $out:$tag (archive $out.tar)"
