#!/usr/bin/env bash
# Prepares .whl/ (ignored by .gitignore) with the wheels shoal needs on a device machine that its image
# lacks (cp312, manylinux x86-64), for bench/device_setup.sh's shoal_setup. Run it here, where the
# registry is reachable, then carry ".whl" in the device call.
#   bash bench/device_wheels.sh [DEST]     (default .whl; about 15 MB)
# The image already holds numpy, torch, safetensors, pillow, matplotlib, scipy, gpytorch, anyio, h11,
# markupsafe, python-dateutil, cloudpickle, packaging, pyyaml (/work/.library/device/KINDS.md). What the
# full platform imports beyond those (API, Celery workers on the embedded SQLite broker, the trainer and
# the sweeper) is listed below, with the versions the dev venv runs; typing_extensions and click are
# carried too because pydantic and celery need versions newer than the image may hold. Every package is
# named: pip is run with --no-deps, so a dependency missing here fails on the device at import.
set -euo pipefail
DEST=${1:-.whl}
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
  manylinux1_x86_64)
WHEELS=(
  # the C environments' binding
  cffi==2.1.1 pycparser==3.12
  # configuration and the API
  pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
  annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  fastapi==0.165.0 starlette==1.10.0 opentelemetry-api==1.45.2 uvicorn==0.55.0 click==8.5.1
  # the database and its migrations
  sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3
  # Celery and its broker on SQLAlchemy (kombu's sqla transport)
  celery==5.7.0 kombu==5.7.0 billiard==4.3.2 vine==5.1.0 amqp==5.4.2 tzlocal==5.4.5
  click-didyoumean==0.3.1 click-plugins==1.1.1.2 click-repl==0.4.1 prompt-toolkit==3.0.53 wcwidth==0.9.4
  # PostgreSQL and Redis clients, for the servers bench/device_services.sh starts there
  psycopg==3.3.9 psycopg-binary==3.3.9 redis==8.2.0
  # envs_c.gymnasium_env
  gymnasium==1.4.0 farama-notifications==0.0.6
  # PufferLib 3.0's vector module, for the anchor in bench/vector_device.sh
  psutil==7.1.3
)
mkdir -p "$DEST"
args=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp)
for p in "${PLATFORMS[@]}"; do args+=(--platform "$p"); done
python3 -m pip download -q "${args[@]}" -d "$DEST" "${WHEELS[@]}"
# One version of each: two stop the whole install on the device.
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z' 'a-z' | sort | uniq -d)
[ -z "$dups" ] || { echo "more than one wheel of: $dups (remove the older ones from $DEST)"; exit 1; }
ls "$DEST" | wc -l
du -sh "$DEST"
