# syntax=docker/dockerfile:1
# shoal API image: FastAPI, the dashboard and `shoal migrate`. No torch: the API process never imports it,
# and the build fails if a dependency drags it in.
#   docker build -f docker/api.Dockerfile -t shoal-api .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: compiles the environments into their cache (envs_c/build.py) with gcc ----------------------
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && pip install --upgrade pip "setuptools>=69" wheel "cffi>=1.16"
# Third-party dependencies first, from pyproject.toml alone: this layer survives code edits.
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN --mount=type=cache,target=/root/.cache/pip \
    python /tmp/build/requirements.py /tmp/build/pyproject.toml api > /tmp/build/requirements.txt \
 && pip install -r /tmp/build/requirements.txt
# Editable install from /app: configs/ and migrations/ are read relative to the source tree
# (services.common.config.CONFIG_DIR, services.common.migrate.MIGRATIONS), so the tree is the install.
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && python -c "import services.api.app" \
 && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the API image" >&2; exit 1; fi \
 && python -m compileall -q services envs_c migrations

# ---- runtime: no compiler ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to shoal and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin shoal \
 && mkdir -p /data/artifacts \
 && chown shoal:shoal /data/artifacts
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# SHOAL_ENV_PATH: user environments' specs, mounted at /envs, listed by GET /envs beside the built-ins.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 SHOAL_ARTIFACTS=/data/artifacts \
    SHOAL_ENV_PATH=/envs
WORKDIR /app
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["tini", "--", "shoal"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
