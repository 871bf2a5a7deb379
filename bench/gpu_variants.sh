#!/bin/bash
# One device call: train once per line of VARIANTS ("name env [seed=N] section.key=value ..."), each under WALL s,
# and print one SUMMARY line per variant (steady SPS, first uptime at perf >= 0.9, final window, eval).
# With TESTS=1 the GPU tests (CUDA graphs, PPO pieces) run first.
#   run(carry=[".whl"], timeout_s=600):  TESTS=1 bash bench/gpu_variants.sh 25 bench/variants/pong.txt
set -u
WALL=$1; VARIANTS=$2; export PYTHONUNBUFFERED=1
source bench/device_setup.sh
shoal_setup /tmp/build.log || { tail -20 /tmp/build.log; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader; mkdir -p /tmp/v
if [ "${TESTS:-0}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_ppo.py 2>&1 | tail -25
fi
while read -r name env sets; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  args=(); for s in $sets; do if [[ $s == seed=* ]]; then args+=(--seed "${s#seed=}"); else args+=(--set "$s"); fi; done
  timeout $(( ${WALL%.*} + 60 )) python3 bench/gpu_train.py "$env" "$WALL" "/tmp/v/$name.jsonl" "${args[@]}" \
    > /tmp/$name.log 2>&1
  echo "$name rc=$? $(grep SUMMARY /tmp/$name.log | cut -c9-)"
  grep -v SUMMARY /tmp/$name.log | grep -i -E "error|Traceback" | head -3
done < "$VARIANTS"
[ -n "${OUT:-}" ] && tar czf "$OUT/variants.tgz" -C /tmp v
