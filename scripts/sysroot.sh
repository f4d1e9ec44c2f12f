#!/usr/bin/env bash
# An arm64 Debian 11 (bullseye, glibc 2.31) sysroot for the cross build:
#   scripts/sysroot.sh [DIR]      (default target/sysroot-bullseye-arm64)
# Prints its path. Linking against the oldest glibc drsnd supports makes
# a binary that also starts on the boxes still on it (bullseye-based
# IOT2050 images, JetPack 5 / Ubuntu 20.04); glibc is backwards
# compatible, so the same binary runs on every newer one. Only the headers
# and libraries are needed, so debootstrap's first stage (download and
# unpack, no emulation) is enough; nothing is configured or run in it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/sysroot-bullseye-arm64}
if [ -e "$dir/usr/lib/aarch64-linux-gnu/libasound.so" ] && [ -e "$dir/usr/include/stdio.h" ] \
  && [ -z "$(find "$dir" -type l -lname '/*' -print -quit)" ]; then
  echo "$dir"
  exit 0
fi
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
rm -rf "$dir"
mkdir -p "$dir"
debootstrap --foreign --arch=arm64 --variant=minbase --include=libc6-dev,libasound2-dev \
  bullseye "$dir" http://deb.debian.org/debian >&2
# The first stage unpacks only the base set; the rest waits in the cache.
for deb in "$dir"/var/cache/apt/archives/*.deb; do
  dpkg-deb -x "$deb" "$dir"
done
# Absolute links (libpthread.so -> /lib/aarch64-linux-gnu/libpthread.so.0)
# would reach this machine's own arm64 libraries: point them inside.
find "$dir" -type l -lname '/*' | while read -r link; do
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$dir$(readlink "$link")")" "$link"
done
echo "$dir"
