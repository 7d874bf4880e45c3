#!/usr/bin/env bash
# Builds the container image from the Dockerfile with podman and runs it: non-root, /healthz and
# /readyz, `portcullis check` on the shipped configs inside the image, no compiler, source or
# secret in it, SIGTERM honoured within the grace period, and a login through the
# containerised proxy (the real-browser test's demo target, with the binary in the container).
#
# No Docker engine and no registry here: base images are made from Debian packages with
# mmdebstrap and tagged with the names the Dockerfile's FROM lines use; the Rust builder stage
# gets the host's rustup toolchain and crate cache mounted (the Dockerfile stays standard:
# `docker build .` works elsewhere with the public images).
# Usage: scripts/image-test.sh            (IMAGE=localhost/portcullis:test by default)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-localhost/portcullis:test}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
for pkg in podman runc mmdebstrap; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { "${sudo_cmd[@]}" apt-get update -qq; DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends podman runc mmdebstrap >/dev/null; break; }
done
P=(podman --runtime runc --cgroup-manager=cgroupfs)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! "${P[@]}" image exists docker.io/library/debian:bookworm-slim; then
  echo "== base image debian:bookworm-slim (mmdebstrap)"
  # Slim as the official image is: no apt lists or caches, no documentation.
  mmdebstrap --quiet --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$work/slim.tar"
  "${P[@]}" import --quiet "$work/slim.tar" docker.io/library/debian:bookworm-slim >/dev/null
  rm -f "$work/slim.tar"
fi
if ! "${P[@]}" image exists docker.io/library/rust:1-bookworm; then
  echo "== builder image rust:1-bookworm (Debian build tools; the toolchain is mounted at build)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,build-essential,cmake,pkg-config,perl bookworm "$work/builder.tar"
  "${P[@]}" import --quiet \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/builder.tar" docker.io/library/rust:1-bookworm >/dev/null
  rm -f "$work/builder.tar"
fi

echo "== build $IMAGE"
# Machines whose outbound TLS goes through an inspecting proxy trust its CA in the host's
# bundle only: cargo in the build reads that bundle (build-time mounts of the bundle and of a
# cargo config naming it; neither is part of the image, and the images' own
# /etc/ssl/certs stays theirs for apt).
ca=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  printf '[http]\ncainfo = "/run/build-ca/ca.crt"\n' > "$work/cargo-config.toml"
  ca=(--volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca/ca.crt:ro
      --volume "$work/cargo-config.toml:/usr/local/cargo/config.toml:ro")
fi
started=$(date +%s)
"${P[@]}" build --quiet --network=host "${ca[@]}" \
  --volume "$HOME/.rustup:/usr/local/rustup:ro" \
  --volume "$HOME/.cargo/bin:/usr/local/cargo/bin:ro" \
  --volume "$HOME/.cargo/registry:/usr/local/cargo/registry" \
  -t "$IMAGE" . >/dev/null
echo "built in $(( $(date +%s) - started )) s; size $(( $("${P[@]}" image inspect --format '{{.Size}}' "$IMAGE") / 1048576 )) MiB"

# Explicit limits: runc here cannot inherit the host's (rlimits cannot be raised inside).
limits=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
run=("${P[@]}" run --rm --network=host "${limits[@]}")
fail() { echo "image-test: $*" >&2; exit 1; }

echo "== runs as non-root"
[ "$("${run[@]}" --entrypoint id "$IMAGE" -u)" = 10001 ] || fail "the image does not run as uid 10001"

echo "== no compiler, no source, no secret"
leftovers="$("${run[@]}" --entrypoint bash "$IMAGE" -c \
  'for c in cc gcc rustc cargo git; do command -v $c; done; ls -d /work /usr/src/portcullis 2>/dev/null; grep -rlI "PRIVATE KEY" /etc/portcullis /usr/local 2>/dev/null' || true)"
[ -z "$leftovers" ] || fail "found in the image: $leftovers"

echo "== portcullis check accepts the shipped configs"
key="$(head -c 32 /dev/urandom | base64)"
"${run[@]}" -e OIDC_CLIENT_SECRET=x -e SESSION_KEY="$key" "$IMAGE" check --config /etc/portcullis/conf/portcullis.yaml
"${run[@]}" "$IMAGE" check --config /etc/portcullis/conf/dev.yaml

echo "== /healthz, /readyz, and SIGTERM within the grace period"
name="portcullis-image-test-$$"
"${P[@]}" run -d --name "$name" --network=host "${limits[@]}" "$IMAGE" run --config /etc/portcullis/conf/dev.yaml >/dev/null
trap '"${P[@]}" rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:9090/healthz 2>/dev/null && break; sleep 0.1; done
curl -fsS http://127.0.0.1:9090/healthz >/dev/null || fail "/healthz does not answer"
curl -fsS http://127.0.0.1:9090/readyz >/dev/null || fail "/readyz does not answer"
stopped=$(date +%s)
"${P[@]}" stop --time 30 "$name" >/dev/null
code="$("${P[@]}" inspect --format '{{.State.ExitCode}}' "$name")"
took=$(( $(date +%s) - stopped ))
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
[ "$took" -le 15 ] || fail "took $took s to stop"
"${P[@]}" rm "$name" >/dev/null
echo "stopped in ${took} s, exit 0"

echo "== a login through the containerised proxy (the browser test's demo target)"
cat > "$work/portcullis-in-container" <<WRAP
#!/usr/bin/env bash
exec ${P[*]} run --rm --network=host ${limits[*]} $IMAGE "\$@"
WRAP
chmod +x "$work/portcullis-in-container"
PORTCULLIS_BIN="$work/portcullis-in-container" tests/browser/run.sh --target demo
echo "image-test: ok"
