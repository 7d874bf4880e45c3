#!/usr/bin/env bash
# Installs the pinned npm dependencies of the test folder DIR when they are missing or changed
# (a stamp of package.json + package-lock.json), so repeated runs do nothing.
set -euo pipefail
dir="$1"
cd "$dir"
command -v npm >/dev/null || { echo "npm-install.sh: npm is not installed" >&2; exit 1; }
stamp=node_modules/.installed-lock.sha256
want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
