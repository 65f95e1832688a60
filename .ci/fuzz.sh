#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly from its seeds (FUZZ_SECONDS
# each, default 12: about a minute in all), so the targets keep building and
# the seeds keep passing. A crash fails the step; libFuzzer leaves the input
# in fuzz/artifacts/<target>/ (turn it into a regression test). Longer
# campaigns: fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-12}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
# cargo fuzz needs nightly's -Z flags; without a nightly toolchain, the
# stable compiler is allowed them.
toolchain=+nightly
if ! rustup toolchain list | grep -q '^nightly'; then
  toolchain=+stable
  export RUSTC_BOOTSTRAP=1
fi
targets=$(cargo "$toolchain" fuzz list)
cargo "$toolchain" fuzz build
for target in $targets; do
  corpus=$(mktemp -d)
  cp corpus/"$target"/* "$corpus"/
  cargo "$toolchain" fuzz run "$target" "$corpus" -- -max_total_time="$seconds" 2>&1 | tail -1
  rm -rf "$corpus"
done
