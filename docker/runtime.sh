#!/usr/bin/env bash
# The image's runtime stage, as a script so that CI runs the very same
# steps on the host (docker/check.sh): curl for the HEALTHCHECK, CA
# certificates for upstreams and ACME over TLS, the unprivileged user the
# proxy runs as, and its directories: /etc/portcullis (the configuration,
# read-only to it) and /var/lib/portcullis (its state: certificates it
# makes or orders, session-ticket keys). Runs again without harm.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v curl >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates curl >/dev/null
  rm -rf /var/lib/apt/lists/*
fi
# Numeric ids (10001), so that USER in the Dockerfile and volume owners on
# the host mean the same account.
if ! getent group portcullis >/dev/null; then
  groupadd --system --gid 10001 portcullis
fi
if ! id portcullis >/dev/null 2>&1; then
  useradd --system --uid 10001 --gid 10001 --no-create-home \
    --home-dir /var/lib/portcullis --shell /usr/sbin/nologin portcullis
fi
install -d -m 0755 -o root -g root /etc/portcullis
install -d -m 0750 -o portcullis -g portcullis /var/lib/portcullis
