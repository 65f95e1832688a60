#!/usr/bin/env bash
# The image's build stage, as a script so that CI runs the very same steps
# on the host (docker/check.sh): the release binary, built from the
# lockfile, copied to OUT.
#
#   docker/build.sh OUT
set -euo pipefail
out=${1:?usage: docker/build.sh OUT}
cd "$(dirname "$0")/.."
cargo build -j"${BUILD_JOBS:-2}" --release --locked -p proxy-bin --bin portcullis
install -D -m 0755 target/release/portcullis "$out/portcullis"
