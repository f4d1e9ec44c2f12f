#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb:
#   scripts/build-deb.sh [--arch amd64|arm64] [BINARY] [OUTDIR]
# --arch defaults to this machine's; another one is cross-built
# (scripts/cross-build.sh, Debian's packages only). BINARY defaults to a
# fresh release build for that architecture, OUTDIR to target/debian.
# The binary is stripped with the target's own tools, and Depends names the
# newest glibc symbol version the binary asks for. Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(dpkg --print-architecture)
arch=$host
if [ "${1:-}" = --arch ]; then
  arch=${2:?--arch needs amd64 or arm64}
  shift 2
fi
bin=${1:-}
out=${2:-target/debian}
case $arch in
  amd64) gnu=x86_64-linux-gnu; machine="X86-64" ;;
  arm64) gnu=aarch64-linux-gnu; machine="AArch64" ;;
  *) echo "build-deb.sh: --arch $arch: not supported (amd64, arm64)" >&2; exit 2 ;;
esac
if [ -z "$bin" ]; then
  if [ "$arch" = "$host" ]; then
    cargo build --release --locked --quiet
    bin=target/release/drsnd
  else
    bin=$(scripts/cross-build.sh)
  fi
fi
# A binary of another architecture would make a package that cannot run.
if ! readelf -h "$bin" | grep -q "Machine: *.*$machine"; then
  echo "build-deb.sh: $bin is not an $arch ($machine) binary" >&2
  exit 1
fi
strip=strip
[ "$arch" = "$host" ] || strip=$gnu-strip
# The oldest glibc that runs the binary: the newest GLIBC_x.y it names.
glibc=$(readelf --version-info --wide "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
if [ -z "$glibc" ]; then
  echo "build-deb.sh: $bin names no glibc version" >&2
  exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
stage=$(mktemp -d)
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -Dm755 -s --strip-program="$strip" "$bin" "$stage/usr/bin/drsnd"
install -Dm644 systemd/drsnd.service "$stage/usr/lib/systemd/system/drsnd.service"
install -Dm644 systemd/drsnd.toml "$stage/etc/drsn/drsnd.toml"
install -Dm644 systemd/drsnd.sysusers "$stage/usr/lib/sysusers.d/drsnd.conf"
install -Dm644 systemd/drsnd.tmpfiles "$stage/usr/lib/tmpfiles.d/drsnd.conf"
for f in models/drsn-cw-cwru10.onnx models/drsn-cw-cwru10.json models/drsn-cw-cwru10.parity.json \
  models/drsn-denoise.onnx models/drsn-denoise.json models/drsn-denoise.parity.json; do
  install -Dm644 "$f" "$stage/usr/share/drsn/models/$(basename "$f")"
done
for f in README.md docs/protocol.md docs/service.md models/README.md; do
  install -Dm644 "$f" "$stage/usr/share/doc/drsnd/$(echo "$f" | tr / _ | sed 's/^docs_//')"
done
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: drsnd
Version: $version
Architecture: $arch
Maintainer: drsnd developers <drsnd@localhost>
Section: misc
Priority: optional
Depends: libc6 (>= $glibc), libasound2 | libasound2t64
Description: real-time machine-fault monitoring with a Deep Residual Shrinkage Network
 drsnd listens to an accelerometer or microphone (ALSA), a WAV recording or
 raw PCM, classifies every frame with a DRSN and publishes labels,
 probabilities and the learned per-channel thresholds as NDJSON over a
 Unix socket.
CONTROL
echo /etc/drsn/drsnd.toml > "$stage/DEBIAN/conffiles"
install -m755 systemd/debian/postinst systemd/debian/prerm systemd/debian/postrm "$stage/DEBIAN/"
mkdir -p "$out"
deb="$out/drsnd_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$stage" "$deb" >/dev/null
echo "$deb"
