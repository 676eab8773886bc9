# The controller image, from binaries built beforehand (nothing is compiled
# inside, so the image needs no Rust toolchain):
#
#   cargo build --release --locked -p jamstack-controller
#   mkdir -p dist && cp target/release/jamstack-controller dist/
#   docker build -f packaging/controller.Dockerfile -t jamstack/controller dist
#
#   docker run -d -p 8080:8080 -v jamstack-data:/var/lib/jamstack jamstack/controller
#
# The image runs `serve`: its builds go to runners of their own
# (packaging/runner.Dockerfile). `up` would start the `jamstack-runner`
# program beside the controller, which this image leaves out.
#
# BASE is any glibc-based image with a shell (Debian bookworm by default,
# the release the binaries are built on). The binary needs libssl3 and
# zlib; packages are installed when the base has apt-get.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN if command -v apt-get >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && mkdir -p /var/lib/jamstack \
    && chown 10001:10001 /var/lib/jamstack

COPY jamstack-controller /usr/local/bin/jamstack-controller

# Every flag has an environment variable: see docs/configuration.md.
ENV JAMSTACK_DATA_DIR=/var/lib/jamstack \
    JAMSTACK_LISTEN=0.0.0.0:8080
VOLUME /var/lib/jamstack
EXPOSE 8080
# Not root: the controller needs no privilege.
USER 10001:10001
# SIGTERM finishes requests in flight and hands leases back.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/jamstack-controller"]
CMD ["serve"]
