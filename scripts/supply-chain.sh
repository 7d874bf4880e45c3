#!/usr/bin/env bash
# The supply-chain check: `cargo deny` on what we ship (deny.toml: advisories, licences,
# duplicate versions, sources). Run by .ci/run; idempotent; installs cargo-deny when missing.
#
#   scripts/supply-chain.sh                   the check
#   scripts/supply-chain.sh --vendor-db DIR   refresh supply-chain/advisory-db from a checkout
#                                             of github.com/rustsec/advisory-db at DIR
#
# The advisory database: a fresh clone of RustSec's when github.com answers; otherwise (these
# machines reach crates.io but not github.com) the snapshot vendored in supply-chain/advisory-db:
# the advisories of every crate in Cargo.lock at the time it was taken, and the list of those
# crates. A crate in Cargo.lock that the snapshot has never looked at fails the check until the
# snapshot is refreshed, so a new dependency is never waved through unchecked.
set -euo pipefail
cd "$(dirname "$0")/.."

vendored=supply-chain/advisory-db
db_root=target/advisory-dbs
db_url=https://github.com/rustsec/advisory-db
# Duplicate versions today (two RustCrypto generations: openidconnect's and jsonwebtoken's,
# and Pingora's older hashbrown/indexmap/parking_lot): they may fall, never rise.
max_duplicates=45

locked_crates() {
  sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u
}

if [ "${1:-}" = "--vendor-db" ]; then
  src=${2:?"usage: $0 --vendor-db PATH-TO-ADVISORY-DB-CHECKOUT"}
  commit=$(git -C "$src" rev-parse HEAD)
  date=$(git -C "$src" show -s --format=%cI HEAD)
  rm -rf "$vendored"
  mkdir -p "$vendored/crates"
  while read -r crate; do
    [ -d "$src/crates/$crate" ] && cp -r "$src/crates/$crate" "$vendored/crates/"
  done < <(locked_crates)
  cp "$src/LICENSE.txt" "$vendored/"
  {
    echo "# RustSec advisory-db, pruned to the crates of Cargo.lock; made by scripts/supply-chain.sh --vendor-db"
    echo "commit $commit"
    echo "date $date"
    locked_crates | sed 's/^/crate /'
  } > "$vendored/SNAPSHOT"
  echo "supply-chain: vendored $(find "$vendored/crates" -name '*.md' | wc -l) advisories of $(locked_crates | wc -l) crates, RustSec $commit ($date)"
  exit 0
fi

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "supply-chain: installing cargo-deny"
  cargo install --locked cargo-deny
fi

# Where cargo-deny keeps the clone of $db_url: ask it, since the directory name is its hash.
mkdir -p "$db_root"
offline=()
if timeout 60 cargo deny fetch db >/dev/null 2>"$db_root/fetch.log"; then
  echo "supply-chain: advisory database fetched from $db_url"
else
  db_dir=$(grep -o "$db_root/advisory-db-[0-9a-f]*" "$db_root/fetch.log" | head -1 || true)
  if [ -z "$db_dir" ]; then
    echo "supply-chain: cargo deny could not fetch the advisory database and did not say where it keeps it:" >&2
    cat "$db_root/fetch.log" >&2
    exit 1
  fi
  unchecked=$(comm -23 <(locked_crates) <(sed -n 's/^crate //p' "$vendored/SNAPSHOT" | sort -u))
  if [ -n "$unchecked" ]; then
    echo "supply-chain: the vendored advisory snapshot has never looked at these crates of Cargo.lock:" >&2
    echo "$unchecked" | sed 's/^/  /' >&2
    echo "refresh it: scripts/supply-chain.sh --vendor-db PATH-TO-A-CHECKOUT-OF-$db_url" >&2
    exit 1
  fi
  commit=$(sed -n 's/^commit //p' "$vendored/SNAPSHOT")
  date=$(sed -n 's/^date //p' "$vendored/SNAPSHOT")
  echo "supply-chain: github.com unreachable ($(grep -m1 -o 'Could not resolve host[^"]*\|unable to access[^"]*' "$db_root/fetch.log" || echo 'fetch failed')); using the vendored snapshot, RustSec $commit of $date"
  # cargo-deny reads the database from a git checkout (it asks git for its date).
  rm -rf "$db_dir"
  mkdir -p "$db_dir"
  cp -r "$vendored/." "$db_dir/"
  git -C "$db_dir" init -q
  git -C "$db_dir" add -A
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git -C "$db_dir" \
    -c user.name=supply-chain -c user.email=supply-chain@localhost commit -q -m "RustSec $commit"
  offline=(--offline)
fi

out=$(cargo deny "${offline[@]}" --color never check 2>&1) || {
  echo "$out" | grep -v '^warning\[duplicate\]' >&2
  echo "supply-chain: cargo deny refused (see above)" >&2
  exit 1
}
duplicates=$(grep -c '^warning\[duplicate\]' <<<"$out" || true)
echo "$out" | tail -1
if [ "$duplicates" -gt "$max_duplicates" ]; then
  echo "$out" | grep -A12 '^warning\[duplicate\]' >&2
  echo "supply-chain: $duplicates crates in two versions, more than the $max_duplicates of before: see above" >&2
  exit 1
fi
echo "supply-chain: ok (advisories, licences, sources, bans; $duplicates crates in two versions, at most $max_duplicates)"
