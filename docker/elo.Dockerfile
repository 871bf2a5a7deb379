# syntax=docker/dockerfile:1
# shoal Elo image: Celery workers on queue "elo" that replay stored checkpoints headless on CPU and refit
# ratings. CPU-only torch (no CUDA libraries: a far smaller image).
#   docker build -f docker/elo.Dockerfile -t shoal-elo .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: compiles the environments into their cache (envs_c/build.py) with gcc ----------------------
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && pip install --upgrade pip "setuptools>=69" wheel "cffi>=1.16"
# CPU torch first, from its own index; the extra's "torch>=2.3" below is then already satisfied.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN --mount=type=cache,target=/root/.cache/pip \
    python /tmp/build/requirements.py /tmp/build/pyproject.toml elo python-envs > /tmp/build/requirements.txt \
 && pip install -r /tmp/build/requirements.txt \
 && python -c "import torch, sys; sys.exit(torch.version.cuda is not None)"
# Editable install from /app: configs/ and migrations/ are read relative to the source tree.
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && SHOAL_ENV_CACHE=/opt/shoal/envs shoal env build \
 && python -c "import torch" \
 && python -m compileall -q services envs_c migrations

# ---- runtime: with gcc, which compiles a user's environment (SHOAL_ENV_PATH) on its first use ------------
FROM ${PYTHON_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to the Celery worker (a warm shutdown) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin shoal \
 && mkdir -p /data/artifacts \
 && chown shoal:shoal /data/artifacts
COPY --from=builder /opt/venv /opt/venv
# The built-in environments, compiled. User environments are found in SHOAL_ENV_PATH (mount them at /envs)
# and compiled into the same cache on first use, so the worker's user owns it.
COPY --from=builder --chown=10001:10001 /opt/shoal /opt/shoal
COPY --from=builder /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 SHOAL_ARTIFACTS=/data/artifacts \
    SHOAL_ENV_CACHE=/opt/shoal/envs SHOAL_ENV_PATH=/envs
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["tini", "--", "shoal"]
CMD ["worker", "--queue", "elo", "--concurrency", "2"]
