#!/usr/bin/env bash
# Installs the Debian packages drsnd needs to build and test (idempotent).
set -euo pipefail
pkgs=(libasound2-dev pkg-config alsa-utils pulseaudio pulseaudio-utils libasound2-plugins socat systemd binutils faketime chromium chromium-driver prometheus mosquitto mosquitto-clients openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >/dev/null
fi
