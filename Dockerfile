# syntax=docker/dockerfile:1
# Portcullis container image.
#   docker build -t portcullis .
#   docker run --rm -p 8080:8080 -e OIDC_CLIENT_SECRET -e SESSION_KEY portcullis
#   docker run --rm -e OIDC_CLIENT_SECRET=x -e SESSION_KEY="$(openssl rand -base64 32)" \
#     portcullis check --config /etc/portcullis/conf/portcullis.yaml
# The shipped conf/ (the workstation example) is baked into /etc/portcullis/conf and the
# shipped scripts into /etc/portcullis/plugins, the repository's layout, so the config's
# relative plugin paths hold; in production mount your own config directory over
# /etc/portcullis/conf (-v "$PWD/my-conf:/etc/portcullis/conf:ro").

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# cmake and pkg-config are needed by native build scripts in the dependency tree.
# Versions are not pinned (DL3008): the bookworm archive drops old versions, which would break
# the build; the base image tag is what fixes the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /work

# Dependencies first: this layer stays cached until Cargo.toml or Cargo.lock changes.
# (cargo fetch reads only the manifest and the lock file; no sources are needed yet.)
COPY Cargo.toml Cargo.lock ./
RUN cargo fetch --locked

COPY src/ src/
COPY conf/ conf/
COPY plugins/ plugins/
# Cargo.toml declares the bench target, and cargo refuses a manifest whose targets are
# missing; the bench is not built here.
COPY benches/ benches/
RUN cargo build --release --locked

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to the OpenID provider, Redis and upstreams.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# A fixed numeric id, so that `USER` below is numeric and Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 portcullis \
 && useradd --system --uid 10001 --gid portcullis --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin portcullis

COPY --from=builder /work/target/release/portcullis /usr/local/bin/portcullis
# Configs stay root-owned and read-only for the proxy user.
COPY --from=builder /work/conf/ /etc/portcullis/conf/
COPY --from=builder /work/plugins/ /etc/portcullis/plugins/

# Relative paths in a config (upstreams_file, plugin scripts) then also resolve from here.
WORKDIR /etc/portcullis
USER 10001:10001

# 8080 HTTP (or redirect to HTTPS), 8443 HTTPS, 9090 Prometheus /metrics.
EXPOSE 8080 8443 9090
# SIGTERM: stop accepting, let in-flight requests finish for server.grace_period, exit.
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks the operations listener for /healthz.
# (Kubernetes uses its own probes on /readyz and /healthz; see deploy/.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["portcullis"]
CMD ["run", "--config", "/etc/portcullis/conf/portcullis.yaml"]
