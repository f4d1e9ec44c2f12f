#!/usr/bin/env bash
# Cross-builds drsnd for arm64 with Debian's packages only:
#   scripts/cross-build.sh           builds the binary and prints its path
#   scripts/cross-build.sh --tests   builds the library's unit tests for
#                                    arm64 and runs them (under emulation,
#                                    through binfmt: scripts/setup-cross.sh)
# Builds into target/cross with Debian's rustc (rustup's cannot fetch the
# arm64 standard library here, and the two cannot share build artefacts),
# linked against Debian 11's glibc 2.31 (scripts/sysroot.sh) so that the
# binary also starts on the boxes still on it. From scratch this takes
# about as long as a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cross.sh >&2
triple=aarch64-unknown-linux-gnu
gnu=aarch64-linux-gnu
sysroot=$(realpath "$(scripts/sysroot.sh)")
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$sysroot"
export CC_aarch64_unknown_linux_gnu=$gnu-gcc AR_aarch64_unknown_linux_gnu=$gnu-ar
export CFLAGS_aarch64_unknown_linux_gnu="--sysroot=$sysroot"
# alsa-sys finds the sysroot's libasound through pkg-config.
export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_SYSROOT_DIR=$sysroot
export PKG_CONFIG_LIBDIR=$sysroot/usr/lib/$gnu/pkgconfig:$sysroot/usr/share/pkgconfig
if [ "${1:-}" = --tests ]; then
  /usr/bin/cargo test --locked --quiet --target $triple --target-dir target/cross --lib -- --test-threads 2
  exit
fi
/usr/bin/cargo build --release --locked --quiet --target $triple --target-dir target/cross --bin drsnd >&2
echo "target/cross/$triple/release/drsnd"
