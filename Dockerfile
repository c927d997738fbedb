# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when
# Cargo.toml or Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# The application itself. Migrations, openapi.yaml and the dashboard's and
# the signup widget's files (assets/) are embedded in the binary at compile
# time.
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
COPY openapi.yaml ./
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && strip target/release/mailvet

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to mail servers and databases; curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mailvet \
 && useradd --system --uid 10001 --gid mailvet --home-dir /data --shell /usr/sbin/nologin mailvet \
 && mkdir -p /data \
 && chown mailvet:mailvet /data

COPY --from=build /src/target/release/mailvet /usr/local/bin/mailvet

# The embedded SQLite store lives on the /data volume unless DATABASE_URL
# names a Postgres server. The container listens on all of its interfaces,
# so mailvet refuses to start without API keys: set MAILVET_SECRET_KEYS
# (or MAILVET_SECRET_KEYS_FILE for a Docker secret).
ENV DATABASE_URL=sqlite:///data/mailvet.db \
    MAILVET_LISTEN=0.0.0.0:8080 \
    MAILVET_LOG_FORMAT=json \
    RUST_LOG=info

# Numeric, so that runtimes can check it is not root (runAsNonRoot).
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# The check assumes the port of MAILVET_LISTEN above.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]

# On SIGTERM mailvet lets in-flight requests finish (MAILVET_SHUTDOWN_GRACE,
# 30 s) and exits 0; give `docker stop` at least that long (--stop-timeout 40
# or compose's stop_grace_period).
ENTRYPOINT ["mailvet"]
CMD ["serve"]
