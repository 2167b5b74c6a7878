#!/usr/bin/env bash
# The tests on a foreign architecture, under qemu-user:
#   scripts/test-qemu.sh armv7-unknown-linux-gnueabihf
#   scripts/test-qemu.sh mipsel-unknown-linux-musl     (32-bit MIPS: no 64-bit atomics)
# The subset: every unit test (engine, store, clock, codecs), and the integration tests of the
# store, the engine, the RouterOS simulator lifecycle (real client, real TCP) and its conformance with recorded replies, MQTT (a real
# mosquitto on the host; the SIGKILL test runs our binary under qemu too) and openNDS (the fake
# ndsctl runs natively). Left out: the CLI and crash tests (they run the host's view of many
# processes and take minutes under emulation) and the 10,000-user load test (a benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: scripts/test-qemu.sh TARGET}
. scripts/cross-env.sh
export_rustflags
export "CARGO_TARGET_${triple_var}_RUNNER=$QEMU"
export HOTSPOT_EDGE_TEST_RUNNER="$QEMU"
tests=(--lib --test store --test engine --test routeros_enforce --test routeros_client --test routeros_conformance --test mqtt --test opennds)
skip=(-- --skip ten_thousand)
case "$BUILDER" in
  cargo) cargo "+$TOOLCHAIN" test --locked --target "$TARGET" "${tests[@]}" "${skip[@]}" ;;
  zigbuild)
    std=()
    [ "$BUILD_STD" = yes ] && std=(-Z build-std=std,panic_unwind)
    # zig links; `cargo-zigbuild test` takes the toolchain from the environment, not "+nightly".
    RUSTUP_TOOLCHAIN=$TOOLCHAIN cargo-zigbuild test --locked --target "$TARGET" "${std[@]}" "${tests[@]}" "${skip[@]}" ;;
esac
