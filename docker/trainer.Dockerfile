# syntax=docker/dockerfile:1
# shoal trainer image: a Celery worker on queue "train", one per GPU, running CUDA torch.
#   docker build -f docker/trainer.Dockerfile -t shoal-trainer .
#
# torch's Linux x86_64 wheels on PyPI are the CUDA build and carry their own CUDA runtime, cuDNN and NCCL
# (the nvidia-* wheels), so a plain Python base is enough: the host's NVIDIA driver is mounted in by the
# NVIDIA container toolkit (compose: deploy.resources.reservations.devices; Kubernetes: the device plugin).
# We pin the same torch version as CI (Makefile TORCH) rather than inherit an older one from a
# pytorch/pytorch base image. For a driver that needs another CUDA build, pick its wheel index:
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: compiles the environments into their cache (envs_c/build.py) with gcc ----------------------
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && pip install --upgrade pip "setuptools>=69" wheel "cffi>=1.16"
# torch alone first: the largest layer, rebuilt only when the version or index changes.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN --mount=type=cache,target=/root/.cache/pip \
    python /tmp/build/requirements.py /tmp/build/pyproject.toml trainer python-envs > /tmp/build/requirements.txt \
 && pip install -r /tmp/build/requirements.txt \
 && python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')"
# Editable install from /app: configs/ and migrations/ are read relative to the source tree.
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && SHOAL_ENV_CACHE=/opt/shoal/envs shoal env build \
 && python -c "import services.trainer.tasks" \
 && python -m compileall -q services envs_c migrations

# ---- runtime: with gcc, which compiles a user's environment (SHOAL_ENV_PATH) on its first use ------------
FROM ${PYTHON_IMAGE} AS runtime
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
    SHOAL_ENV_CACHE=/opt/shoal/envs SHOAL_ENV_PATH=/envs \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
USER 10001:10001
# Exec form with tini as PID 1: SIGTERM from `docker stop` or the kubelet reaches the Celery worker
# (tini forwards it, and `shoal worker` runs Celery in its own process, no shell in between), which
# checkpoints the running job and requeues it within the stop grace period.
ENTRYPOINT ["tini", "--", "shoal"]
CMD ["worker", "--queue", "train"]
