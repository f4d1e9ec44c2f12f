#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb:
#   scripts/build-deb.sh [BINARY] [OUTDIR]
# BINARY defaults to a fresh release build, OUTDIR to target/debian.
# Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
out=${2:-target/debian}
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin=target/release/drsnd
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -Dm755 -s "$bin" "$stage/usr/bin/drsnd"
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
Depends: libc6, libasound2 | libasound2t64
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
