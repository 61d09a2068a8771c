# syntax=docker/dockerfile:1
# streaming-producer: every profile of /app/config.yaml in one process.
#
#   docker build -t streaming-producer .
#   docker run --rm -v "$PWD/my-config.yaml:/app/config.yaml:ro" -p 9464:9464 streaming-producer
#
# Two stages: `build` installs uv and the locked runtime dependencies into /app/.venv; the final
# stage copies only that environment and the application onto a clean python:3.13-slim, so no
# compiler, pip cache or uv ends up in the image.

ARG PYTHON_IMAGE=python:3.13-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# The ghcr.io/astral-sh/uv image is the usual source of uv; PyPI carries the same release.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, from the lock file alone: this layer is rebuilt only when they change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# Then the project itself (an editable install: /app/.venv points at /app/supervisor).
COPY README.md ./
COPY supervisor/ supervisor/
COPY profiles/ profiles/
COPY schemas/ schemas/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="streaming-producer" \
      org.opencontainers.image.description="Streams sampled transaction events into Kafka, one task per profile" \
      org.opencontainers.image.licenses="Apache-2.0"

# HEALTH_PORT: /healthz, /readyz (and /metrics) are served on 9464 whatever the mounted config says
# about `metrics`, so the HEALTHCHECK below and Kubernetes' probes work with any valid config. A
# config's own metrics.port, when another, is served as well.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_PORT=9464

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid app \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY supervisor/ supervisor/
COPY profiles/ profiles/
COPY schemas/ schemas/
COPY data/ data/
COPY config.yaml ./
# The application's own bytecode, compiled now: the container never writes to /app.
RUN python -m compileall -q supervisor

USER 10001:10001

# /metrics, /healthz and /readyz (HEALTH_PORT, and the config's metrics.port when it is the same).
EXPOSE 9464

# No init process (tini) is needed: the program runs as PID 1 and handles SIGTERM and SIGINT itself
# (asyncio signal handlers: drain, flush, exit; a second signal stops flushing), it starts no child
# processes, so there are no orphans to reap, and the exec form below leaves no shell in between
# to swallow signals.
STOPSIGNAL SIGTERM

# Liveness from the event loop's heartbeat, on HEALTH_PORT (9464 unless `-e HEALTH_PORT=...`);
# stdlib only (the slim image has no curl or wget). urlopen raises on any status but 2xx, and the
# exit code follows.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('HEALTH_PORT') or '9464'), timeout=4)"]

ENTRYPOINT ["streaming-producer"]
CMD ["run", "--config", "/app/config.yaml"]
