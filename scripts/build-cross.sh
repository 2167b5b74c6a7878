#!/usr/bin/env bash
# Builds a stripped release binary of hotspot-edge for TARGET with the settings in cross/TARGET.env.
#   scripts/build-cross.sh mipsel-unknown-linux-musl [--features ...]
# Prints the binary's path and size. Run scripts/setup-cross.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: scripts/build-cross.sh TARGET [cargo args]}
shift
. scripts/cross-env.sh
# A fixed timestamp keeps the build reproducible; the clock floor it sets is a release date.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

args=(build --release --target "$TARGET" --bin hotspot-edge)
if [ "$BUILD_STD" = yes ]; then
  # std without its backtrace symbolizer (gimli, addr2line, miniz): a panic still prints its
  # message, without a symbolized backtrace. optimize_for_size picks std's smaller algorithms.
  args+=(-Z build-std=std,panic_abort -Z build-std-features=optimize_for_size)
  # Smaller MIPS binaries; nightly-only flags, so they live here and not in Cargo.toml.
  flags="$flags -Z location-detail=none"
fi
export_rustflags

case "$BUILDER" in
  cargo) cmd=(cargo "+$TOOLCHAIN" "${args[@]}" "$@") ;;
  zigbuild)
    args[0]=zigbuild
    if [ "$TOOLCHAIN" = nightly ]; then
      # cargo-zigbuild rejects "+nightly"; the toolchain is chosen through the environment.
      export RUSTUP_TOOLCHAIN=nightly
      cmd=(cargo "${args[@]}" "$@")
    else
      cmd=(cargo "+$TOOLCHAIN" "${args[@]}" "$@")
    fi ;;
  *) echo "unknown BUILDER $BUILDER in $ENV_FILE" >&2; exit 2 ;;
esac
echo "+ ${cmd[*]}" >&2
"${cmd[@]}"
bin="target/$TARGET/release/hotspot-edge"
printf '%s %s bytes\n' "$bin" "$(stat -c %s "$bin")"
