#!/bin/bash
# Issue 17 on one device call: correctness on the GPU, the cold start-up split, recurrent-policy variants.
#   run(kind="nvidia-h200", carry=[".whl", ".old", ".svc"], timeout_s=600, command="bash bench/speed_device.sh")
# .whl: bench/device_wheels.sh. .old (optional): a baseline tree, `git archive REV services | tar -x -C .old`,
# trained by the variants whose name starts with "old_" (same environments and configs, its own services/).
# .svc (optional, bench/services_carry.sh): checks that PostgreSQL and Redis start there.
# STARTUP=0 or LSTM=0 skips a part; WALL is each variant's cap in seconds. THROUGHPUT=1 adds
# bench/trial_throughput.py (TRAINERS, default 1,4), on the carried PostgreSQL and Redis when they start.
# TESTS=0 skips the GPU tests. Everything lands in $OUT.
set -u
export PYTHONUNBUFFERED=1
WALL=${WALL:-25}
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.txt"; }
source bench/device_setup.sh
shoal_setup /tmp/build.log || { tail -20 /tmp/build.log; exit 1; }
log "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) cpus, $(python3 -c 'import torch; print(torch.__version__)')"
if [ "${TESTS:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_optim.py tests/test_ppo.py > "$OUT/pytest.txt" 2>&1
  log "GPU tests rc=$? $(tail -1 "$OUT/pytest.txt")"
  python3 -X importtime -c "import torch" 2> /tmp/importtime.txt
  sort -t'|' -k2 -n /tmp/importtime.txt | tail -40 > "$OUT/torch_importtime.txt"
fi
servers=()
if [ -f .svc/services.tar.xz ]; then
  source bench/device_services.sh && start_services /tmp/svc.log && servers=(--postgres "$SHOAL_PG_URL" --redis "$SHOAL_REDIS_URL")
  log "PostgreSQL and Redis from .svc: ${servers[*]:-failed: $(tail -3 /tmp/svc.log | tr '\n' ' ')}"
fi
if [ "${STARTUP:-1}" = 1 ]; then
  for env in breakout pong; do
    python3 bench/startup.py --device cuda --env "$env" --repeats 3 --max-train-seconds 10 \
      --json "$OUT/startup_$env.json" > "/tmp/startup_$env.txt" 2>&1
    log "startup $env rc=$?"; cat "/tmp/startup_$env.txt" >> "$OUT/summary.txt"
  done
fi
if [ "${LSTM:-1}" = 1 ]; then
  lstm='--set policy.recurrent="lstm"'
  while read -r name sets; do
    path=$PWD; [ "${name#old_}" != "$name" ] && path=$PWD/.old:$PWD
    PYTHONPATH=/tmp/shoalsite:$path timeout $(( WALL + 60 )) python3 bench/gpu_train.py breakout "$WALL" \
      "/tmp/$name.jsonl" $lstm $sets > "/tmp/$name.log" 2>&1
    log "$name rc=$? $(grep SUMMARY "/tmp/$name.log" | cut -c9-)"
    grep -i -E "error|Traceback" "/tmp/$name.log" | head -3
  done <<'VARIANTS'
old_mb16k
mb16k
mb64k --set train.minibatch_size=65536
mb128k --set train.minibatch_size=131072
mb256k --set train.minibatch_size=262144
VARIANTS
fi
if [ "${THROUGHPUT:-0}" = 1 ]; then
  python3 bench/trial_throughput.py --trainers "${TRAINERS:-1,4}" --trials 32 --repeat-alone 3 "${servers[@]}" \
    --out "$OUT/throughput.json" > /tmp/throughput.txt 2>&1
  log "throughput rc=$?"; cat /tmp/throughput.txt >> "$OUT/summary.txt"
fi
log done
