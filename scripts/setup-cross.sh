#!/usr/bin/env bash
# Installs what cross-building drsnd for arm64 and running it under
# emulation takes, from Debian's packages only (idempotent):
#   scripts/setup-cross.sh
# rustup cannot fetch another target's standard library here, so the cross
# build uses Debian's own Rust (rustc-web, cargo-web, and the arm64 std in
# libstd-rust-web-dev:arm64), which installs beside rustup's toolchain
# (/usr/bin/rustc, used only when named). It also registers qemu-aarch64
# with binfmt_misc, so an arm64 drsnd can start its own children (the
# model's trial load) under emulation.
set -euo pipefail
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -qq
fi
pkgs=(rustc-web cargo-web libstd-rust-web-dev:arm64 crossbuild-essential-arm64 libasound2-dev:arm64 libasound2-plugins:arm64
  qemu-user-static binutils pkg-config)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >/dev/null
fi
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  $sudo_cmd mount -t binfmt_misc binfmt_misc "$binfmt"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  $sudo_cmd sh -c "cat /usr/lib/binfmt.d/qemu-aarch64.conf > $binfmt/register"
fi
