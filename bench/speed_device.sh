#!/bin/bash
# Issue 17 in one device call: GPU tests, recurrent-policy variants, trials per GPU-hour through the
# platform, then the cold start-up split with whatever time is left before DEADLINE (s, default 585).
#   run(kind="nvidia-h200", carry=[".whl", ".old", ".svc"], timeout_s=600, command="bash bench/speed_device.sh")
# .whl: bench/device_wheels.sh. .old (optional): a baseline tree, `git archive REV services configs | tar -x
# -C .old` (configs too: services finds them beside itself), trained by the variants named "old_...".
# .svc (optional, bench/services_carry.sh): PostgreSQL and Redis for the throughput bench.
# PARTS (default "tests lstm throughput startup") picks and orders the parts; WALL caps each variant (s);
# TESTS the tests part's test files; VARIANTS overrides the variant list ("name [--set k=v ...]" per line); TRAINERS the throughput part's
# trainer counts (default 1,4; "4mps": 4 through NVIDIA MPS, SHOAL_GPU_MPS) and TRIALS its trials per count (default 32); STARTUP_ENVS the start-up part's games (default "breakout pong"). PARTS may add "imports": where `import torch`'s seconds go.
# Everything lands in $OUT.
set -u
export PYTHONUNBUFFERED=1
WALL=${WALL:-20}; DEADLINE=${DEADLINE:-585}; PARTS=${PARTS:-tests lstm throughput startup}
VARIANTS=${VARIANTS:-"old_mb16k
mb16k
mb128k --set train.minibatch_size=131072"}
T0=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.txt"; }
source bench/device_setup.sh
shoal_setup /tmp/build.log || { tail -20 /tmp/build.log; exit 1; }
log "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) cpus, $(python3 -c 'import torch; print(torch.__version__)'), MPS control: $(command -v nvidia-cuda-mps-control || echo none)"
servers=()
if [ -f .svc/services.tar.xz ]; then
  source bench/device_services.sh && start_services /tmp/svc.log && servers=(--postgres "$SHOAL_PG_URL" --redis "$SHOAL_REDIS_URL")
  log "PostgreSQL and Redis from .svc: ${servers[*]:-failed: $(tail -3 /tmp/svc.log | tr '\n' ' ')}"
fi
for part in $PARTS; do
  case $part in
  tests)
    python3 -m pytest -q -p no:cacheprovider ${TESTS:-tests/test_cuda_graphs.py tests/test_optim.py tests/test_ppo.py} > "$OUT/pytest.txt" 2>&1
    log "GPU tests rc=$? $(tail -1 "$OUT/pytest.txt")" ;;
  lstm)
    while read -r name sets; do
      [ "$(left)" -lt $(( WALL + 40 )) ] && { log "lstm: no time for $name"; break; }
      path=$PWD; [ "${name#old_}" != "$name" ] && path=$PWD/.old:$PWD
      PYTHONPATH=/tmp/shoalsite:$path timeout $(( WALL + 60 )) python3 bench/gpu_train.py breakout "$WALL" \
        "/tmp/$name.jsonl" --set 'policy.recurrent="lstm"' $sets > "/tmp/$name.log" 2>&1
      log "lstm $name rc=$? $(grep SUMMARY "/tmp/$name.log" | cut -c9-)"
      grep -i -E "error|Traceback" "/tmp/$name.log" | head -3
    done <<< "$VARIANTS" ;;
  throughput)
    timeout $(( $(left) - 45 )) python3 bench/trial_throughput.py --trainers "${TRAINERS:-1,4}" --trials "${TRIALS:-32}" \
      --repeat-alone 3 "${servers[@]}" --scratch /tmp/tt --out "$OUT/throughput.json" > /tmp/throughput.txt 2>&1
    log "throughput rc=$?"; cat /tmp/throughput.txt >> "$OUT/summary.txt"
    # Every process's log (API, trainers, sweeper, Elo), to explain a trial that took long.
    (cd /tmp/tt && find . -name platform.log -print0 | tar czf "$OUT/throughput_logs.tgz" --null -T -) ;;
  imports)
    # Is `import torch` slow there because the image's site-packages has no bytecode cache it can use?
    tdir=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    log "torch at $tdir: $(find "$tdir" -name '*.pyc' | wc -l) .pyc, $(find "$tdir" -name '*.py' | wc -l) .py, writable: $([ -w "$tdir" ] && echo yes || echo no), PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-unset}"
    timed='import time; t = time.perf_counter(); import torch; print(round(time.perf_counter() - t, 3))'
    for i in 1 2 3; do
      log "import torch, plain: $(python3 -c "$timed") s; with a bytecode cache in /tmp: $(PYTHONPYCACHEPREFIX=/tmp/pyc python3 -c "$timed") s"
    done ;;
  startup)
    for env in ${STARTUP_ENVS:-breakout pong}; do
      [ "$(left)" -lt 45 ] && { log "startup: no time for $env"; break; }
      timeout $(( $(left) - 5 )) python3 bench/startup.py --device cuda --env "$env" --repeats 3 \
        --max-train-seconds 10 --json "$OUT/startup_$env.json" > "/tmp/startup_$env.txt" 2>&1
      log "startup $env rc=$?"; cat "/tmp/startup_$env.txt" >> "$OUT/summary.txt"
    done ;;
  esac
done
log done
