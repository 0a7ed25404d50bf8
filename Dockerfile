# syntax=docker/dockerfile:1
# vendasta-bridge container image.
#
#   docker build -t vendasta-bridge .
#   docker run -p 8080:8080 -p 9090:9090 -v bridge-data:/data \
#     -e VENDASTA_TOKEN=… -e BRIDGE_ROUTES__0__NAME=shop -e BRIDGE_ROUTES__0__SOURCE=shopify \
#     -e BRIDGE_ROUTES__0__SECRETS=… -e BRIDGE_ROUTES__0__BUSINESS_LOCATION=AG-… vendasta-bridge
#
# Defaults are compiled in, so the image runs on environment variables alone; a config
# file is optional (mount it and set BRIDGE_CONFIG).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Build the dependencies once, in their own layer, from the manifests alone.
COPY Cargo.toml Cargo.lock ./
# .cargo/config.toml sets how the bundled SQLite is compiled.
COPY .cargo ./.cargo
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY config ./config
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && mkdir -p /out/data \
    && cp target/release/vendasta-bridge /out/vendasta-bridge

# distroless/cc has glibc and libgcc and no shell; TLS roots are compiled into the
# binary (webpki-roots) and SQLite is bundled, so nothing else is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="vendasta-bridge" \
      org.opencontainers.image.description="Signed POS/CRM contact webhooks in, Vendasta customers out" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/vendasta-bridge /usr/local/bin/vendasta-bridge
# The queue lives on a volume owned by the non-root user (UID 65532).
COPY --from=build --chown=65532:65532 /out/data /data
ENV BRIDGE_STORE__URL=sqlite:///data/bridge.db
VOLUME ["/data"]
USER 65532:65532
# 8080: public webhooks. 9090: admin (/healthz, /readyz, /metrics, /admin); keep it off the internet.
EXPOSE 8080 9090
# The image has no shell and no curl: the binary checks its own /readyz (admin address
# from the config, 0.0.0.0 read as 127.0.0.1) and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/vendasta-bridge", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vendasta-bridge"]
CMD ["serve"]
