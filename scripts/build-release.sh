#!/usr/bin/env bash
# Release binaries for the field: stripped, static, one per target, into dist/ as
# hotspot-edge-<target>, with SHA256SUMS and SIZES.md (a size table).
#
#   scripts/build-release.sh                      # every release target
#   scripts/build-release.sh mipsel-unknown-linux-musl aarch64-unknown-linux-musl
#   FEATURES=opennds scripts/build-release.sh ... # a smaller build: only what a device needs
#   scripts/build-release.sh --feature-sizes TARGET   # what each cargo feature costs on TARGET
#
# FEATURES (default: http-uplink,radius,opennds) is every device feature; `demo` (the RouterOS
# simulator) is never shipped. Budget: the mipsel binary must stay <= 5 MB (5,000,000 bytes);
# the build fails if it does not. Run scripts/setup-cross.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL_TARGETS=(
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  armv7-unknown-linux-musleabihf
  mipsel-unknown-linux-musl
  mips-unknown-linux-musl
)
DEVICE_FEATURES=http-uplink,radius,opennds
FEATURES=${FEATURES-$DEVICE_FEATURES}
MIPSEL_BUDGET=5000000
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

build() { # target features -> prints the binary's size
  local target=$1 features=$2
  bash scripts/build-cross.sh "$target" --locked --no-default-features ${features:+--features "$features"} >&2
  stat -c %s "target/$target/release/hotspot-edge"
}

if [ "${1:-}" = "--feature-sizes" ]; then
  target=${2:?usage: scripts/build-release.sh --feature-sizes TARGET}
  full=$(build "$target" "$DEVICE_FEATURES")
  printf '| %s | build | bytes | saved |\n| --- | --- | ---: | ---: |\n' "$target"
  printf '| | all device features (%s) | %s | |\n' "$DEVICE_FEATURES" "$full"
  for drop in ${DEVICE_FEATURES//,/ }; do
    rest=$(echo "$DEVICE_FEATURES" | tr ',' '\n' | grep -vx "$drop" | paste -sd, -)
    size=$(build "$target" "$rest")
    printf '| | without %s | %s | %s |\n' "$drop" "$size" "$((full - size))"
  done
  size=$(build "$target" "")
  printf '| | none (RouterOS + MQTT only) | %s | %s |\n' "$size" "$((full - size))"
  size=$(build "$target" "$DEVICE_FEATURES,demo")
  printf '| | with demo (simulator) | %s | %s |\n' "$size" "$((full - size))"
  exit 0
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
mkdir -p dist
for target in "${targets[@]}"; do
  size=$(build "$target" "$FEATURES")
  cp "target/$target/release/hotspot-edge" "dist/hotspot-edge-$target"
  if [ "$target" = mipsel-unknown-linux-musl ] && [ "$size" -gt "$MIPSEL_BUDGET" ]; then
    echo "FAIL: the mipsel binary is $size bytes, over its budget of $MIPSEL_BUDGET" >&2
    exit 1
  fi
done

# Sums and the size table cover every binary in dist/, so targets built one by one add up.
(
  cd dist
  sha256sum hotspot-edge-*-linux-* | grep -v '\.ipk$' > SHA256SUMS
  {
    echo "# hotspot-edge $VERSION release binaries (features: ${FEATURES:-none})"
    echo
    echo "| target | bytes | MiB |"
    echo "| --- | ---: | ---: |"
    for f in hotspot-edge-*-linux-*; do
      case "$f" in *.ipk) continue ;; esac
      s=$(stat -c %s "$f")
      printf '| %s | %s | %s |\n' "${f#hotspot-edge-}" "$s" "$(awk -v s="$s" 'BEGIN{printf "%.2f", s/1048576}')"
    done
  } > SIZES.md
)
cat dist/SIZES.md
echo "sums: dist/SHA256SUMS"
