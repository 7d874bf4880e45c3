#!/usr/bin/env bash
# The soak (tests/soak): a steady mixed load for MINUTES (default 30) against the real binary,
# with RSS and descriptors sampled every 2 s and printed. The test command runs a 2-minute one.
# Usage: scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
./scripts/install-deps.sh
PORTCULLIS_SOAK_SECS=$((minutes * 60)) exec cargo test --locked --test soak -- --nocapture
