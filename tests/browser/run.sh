#!/usr/bin/env bash
# The real-browser test: Debian's Chromium driven by playwright-core, through Portcullis, against
# oidc-provider and against `portcullis demo`. Installs the pinned npm packages of this folder
# and of tests/oidc-provider (whose provider set-up it shares) when missing.
# PORTCULLIS_BIN picks the binary (default: target/debug, then target/release).
# Screenshots of every step: target/browser-screenshots/.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "run.sh: /usr/bin/chromium is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
../npm-install.sh "$PWD/../oidc-provider"
../npm-install.sh "$PWD"
exec node browser.mjs "$@"
