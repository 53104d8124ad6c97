# Multi-stage build: a Rust toolchain image builds acp, a slim Debian image
# runs it as a non-root user. The acp root (config, store, inboxes, devlogs,
# backups) lives on the /data volume.
#
#   docker build -t acp .
#   docker run --rm -v acp-data:/data acp init --agents 4
#   docker run -d --name acp -v acp-data:/data --env-file .env acp
#
# Keyboard-and-mouse delivery needs the desktop's display; in a container acp
# delivers through the inbox files on the volume.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin acp

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --uid 10001 acp \
    && mkdir -p /data && chown acp:acp /data
COPY --from=build /src/target/release/acp /usr/local/bin/acp
USER acp
ENV ACP_ROOT=/data
VOLUME ["/data"]
WORKDIR /data
ENTRYPOINT ["/usr/bin/tini", "--", "acp"]
CMD ["run"]
