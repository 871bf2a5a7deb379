#!/bin/bash
# Issue 15's Python vectorisation on equal footing: gymnasium:CartPole-v1 on shoal's worker processes,
# Gymnasium's AsyncVectorEnv and PufferLib 3.0's Multiprocessing backend, with a spare core per worker (the
# device's CPUs; dev's 2 shared cores starve PufferLib's spinning workers).
#   run(carry=[".whl", ".carry"], command="WORKERS=8 ENVS=64 bash bench/vector_device.sh")
# .whl: bench/device_wheels.sh; .carry: ../shared/anchors/pufferlib3/prepare_carry.sh. PufferLib's vector
# and emulation modules are plain Python: its source tree and carried wheels suffice, nothing is built.
set -u
export PYTHONUNBUFFERED=1
source bench/device_setup.sh
shoal_setup /tmp/build.log || { tail -20 /tmp/build.log; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/whl/*.whl > /dev/null 2>&1
printf '#!/bin/sh\nPYTHONPATH=/tmp/site:%s/.carry/src/pufferlib-3.0.0:/tmp/shoalsite:$PYTHONPATH exec python3 "$@"\n' "$PWD" \
  > /tmp/puffer_python && chmod +x /tmp/puffer_python
python3 bench/byoe_bench.py --workers "${WORKERS:-8}" --envs "${ENVS:-64}" --rounds "${ROUNDS:-3}" \
  --puffer-python /tmp/puffer_python | tee "$OUT/vector.json"
