#!/usr/bin/env bash
# Acceptance test of the Portcullis OIDC login flow against oidc-provider.
# Installs the pinned npm dependencies when they are missing or out of date,
# then runs acceptance.mjs. Arguments are passed on (e.g. --provider-only).
# PORTCULLIS_BIN picks the binary (default: target/debug, then target/release).
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
../npm-install.sh "$PWD"

exec node acceptance.mjs "$@"
