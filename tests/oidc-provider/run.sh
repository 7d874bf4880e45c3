#!/usr/bin/env bash
# Acceptance test of the Portcullis OIDC login flow against oidc-provider.
# Installs the pinned npm dependencies when they are missing or out of date,
# then runs acceptance.mjs. Arguments are passed on (e.g. --provider-only).
# PORTCULLIS_BIN picks the binary (default: target/debug, then target/release).
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "run.sh: npm is not installed" >&2; exit 1; }

stamp=node_modules/.acceptance-lock.sha256
want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [[ ! -d node_modules/oidc-provider || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

exec node acceptance.mjs "$@"
