# Sourced by build-cross.sh and test-qemu.sh: reads cross/$TARGET.env and exports what cargo
# and the C compiler need for TARGET. Sets `triple_var` (FOO_BAR form of TARGET) and `flags`
# (the target's rustflags; the caller may add to them before export_rustflags).
ENV_FILE="cross/$TARGET.env"
[ -f "$ENV_FILE" ] || { echo "no settings for $TARGET: expected $ENV_FILE" >&2; exit 2; }
TARGET_CFLAGS=""
# shellcheck disable=SC1090
. "$ENV_FILE"
ZIG_VENV=${ZIG_VENV:-$HOME/.local/share/hotspot-edge/zig-venv}
[ "$BUILDER" = zigbuild ] && export PATH="$ZIG_VENV/bin:$PATH"
triple_var=$(echo "$TARGET" | tr 'a-z-' 'A-Z_')
cc_var=$(echo "$TARGET" | tr '-' '_')
flags="$TARGET_RUSTFLAGS"
if [ -n "${LINKER:-}" ]; then export "CARGO_TARGET_${triple_var}_LINKER=$LINKER"; fi
if [ -n "${TARGET_CC:-}" ]; then export "CC_$cc_var=$TARGET_CC"; fi
if [ -n "${TARGET_CFLAGS:-}" ]; then export "CFLAGS_$cc_var=$TARGET_CFLAGS"; fi
export_rustflags() { export "CARGO_TARGET_${triple_var}_RUSTFLAGS=$flags"; }
