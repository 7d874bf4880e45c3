#!/usr/bin/env bash
# The whole test suite: installs what the tests need (idempotently), then format, lint, tests.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
# pip --user puts kubernetes-validate here, which a fresh shell need not have on its PATH.
PATH="$(python3 -m site --user-base)/bin:$PATH"
export PATH

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
python3 scripts/check-imports.py
echo "== supply chain: cargo deny (advisories, licences, duplicate versions, sources)"
./scripts/supply-chain.sh
echo "== acceptance: login flow against oidc-provider (npm), a certified OpenID provider"
command -v node >/dev/null || { echo "test.sh: node (>= 20) is needed for the oidc-provider acceptance test" >&2; exit 1; }
cargo build --locked
PORTCULLIS_BIN="$PWD/target/debug/portcullis" tests/oidc-provider/run.sh
echo "== a real browser (Chromium + playwright-core) against oidc-provider and against the demo"
PORTCULLIS_BIN="$PWD/target/debug/portcullis" tests/browser/run.sh

echo "== deploy/: every Kustomize overlay renders, validates against the Kubernetes schemas, and its config passes portcullis check"
python3 scripts/check-deploy.py "$PWD/target/debug/portcullis"

echo "== cargo test"
cargo test --locked --lib --bins --tests "$@"

echo "== fuzzing: every cargo-fuzz target for a few seconds (scripts/fuzz.sh SECONDS for real runs)"
./scripts/fuzz.sh --smoke
