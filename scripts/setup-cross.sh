#!/usr/bin/env bash
# Installs what scripts/build-cross.sh needs: Debian's ARM cross gcc and qemu-user, the rustup
# targets, nightly's rust-src (to build std for MIPS), zig (PyPI `ziglang`, in a venv) and
# cargo-zigbuild. Idempotent: a second run only checks.
set -euo pipefail
ZIG_VENV=${ZIG_VENV:-$HOME/.local/share/hotspot-edge/zig-venv}

need_apt=()
command -v arm-linux-gnueabihf-gcc >/dev/null || need_apt+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
command -v qemu-mipsel >/dev/null || need_apt+=(qemu-user)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rustup target list --installed | grep -qx armv7-unknown-linux-gnueabihf ||
  rustup target add armv7-unknown-linux-gnueabihf
rustup target list --installed | grep -qx aarch64-unknown-linux-musl ||
  rustup target add aarch64-unknown-linux-musl
rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
  rustup component add rust-src --toolchain nightly

if [ ! -x "$ZIG_VENV/bin/python-zig" ]; then
  python3 -m venv "$ZIG_VENV"
  "$ZIG_VENV/bin/pip" install -q ziglang
fi
command -v cargo-zigbuild >/dev/null || cargo install -q --locked cargo-zigbuild
echo "cross toolchain ready (zig in $ZIG_VENV)"
