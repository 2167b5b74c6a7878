#!/usr/bin/env bash
# An installable OpenWrt .ipk from a release binary, without the OpenWrt SDK:
#   scripts/make-ipk.sh mipsel-unknown-linux-musl      # -> dist/hotspot-edge_0.1.0-r1_mipsel_24kc.ipk
#   ARCH=mipsel_74kc scripts/make-ipk.sh mipsel-unknown-linux-musl
# Uses dist/hotspot-edge-TARGET (scripts/build-release.sh TARGET makes it) and the files of the
# feed package in openwrt/hotspot-edge/. Install on the router with: opkg install FILE.ipk
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: scripts/make-ipk.sh TARGET}
# The OpenWrt package architecture of the most common devices for each target.
case "$TARGET" in
  mipsel-unknown-linux-musl) default_arch=mipsel_24kc ;;            # ramips mt7621/mt76x8
  mips-unknown-linux-musl) default_arch=mips_24kc ;;                # ath79
  armv7-unknown-linux-musleabihf) default_arch=arm_cortex-a7_neon-vfpv4 ;; # ipq40xx
  aarch64-unknown-linux-musl) default_arch=aarch64_cortex-a53 ;;    # mediatek filogic, bcm27xx
  x86_64-unknown-linux-musl) default_arch=x86_64 ;;
  *) echo "no OpenWrt architecture known for $TARGET; set ARCH" >&2; default_arch= ;;
esac
ARCH=${ARCH:-$default_arch}
[ -n "$ARCH" ] || exit 2
bin="dist/hotspot-edge-$TARGET"
[ -f "$bin" ] || { echo "$bin missing: run scripts/build-release.sh $TARGET first" >&2; exit 2; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
out=$(python3 scripts/ipk.py build "$bin" "$ARCH" dist)
python3 scripts/ipk.py check "$out"
