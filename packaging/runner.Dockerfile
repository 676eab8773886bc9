# The runner image, from a binary built beforehand:
#
#   cargo build --release --locked -p jamstack-runner
#   mkdir -p dist && cp target/release/jamstack-runner dist/
#   docker build -f packaging/runner.Dockerfile -t jamstack/runner dist
#
# The runner starts build containers on the host's Docker engine: mount its
# socket (or set DOCKER_HOST=tcp://… for a remote engine). Whoever reaches
# the engine is root on its host, so run runners on machines meant for
# builds.
#
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock \
#     -v jamstack-runner:/var/lib/jamstack-runner \
#     -e JAMSTACK_CONTROLLER_URL=https://deploy.example.com \
#     -e JAMSTACK_REGISTRATION_TOKEN=… jamstack/runner
#
# Sources and build output travel through the engine's API (never bind
# mounts), so the work directory need not be visible to the engine.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN if command -v apt-get >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && mkdir -p /var/lib/jamstack-runner

COPY jamstack-runner /usr/local/bin/jamstack-runner

ENV JAMSTACK_RUNNER_WORK_DIR=/var/lib/jamstack-runner
VOLUME /var/lib/jamstack-runner
# Root inside the container only to open the mounted socket, which is
# root-owned on most hosts; builds themselves run as uid 1000 with every
# capability dropped.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/jamstack-runner"]
