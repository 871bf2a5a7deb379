#!/bin/bash
# Issue 16's GPU goals in one device call, by bench/selfplay_bench.py in one process (the parts share the
# learn run's checkpoints and runs), in priority order: learn (moba by self-play, configs/moba.toml plus the
# [selfplay] defaults, for LEARN s start-up included, then the clean evaluation against the strongest bot
# over 256 games), ratings (6 of that run's checkpoints and both anchors, 64 games a pair), h2h (connect4
# and moba: a self-play and a bot-only run of the same budget, then 400 seat-swapped games) and cost
# (self-play's SPS against bot-only, from h2h's runs). Every part is sized to what is left before
# DEADLINE (s, default 570, counted from this script's start; shoal_setup takes about a minute of it).
#   run(kind="nvidia-h200", carry=[".whl"], timeout_s=600, command="bash bench/selfplay_device.sh")
#   run(kind="nvidia-h200", carry=[".whl"], timeout_s=600, command="LEARN=240 bash bench/selfplay_device.sh")
# .whl: bench/device_wheels.sh. LEARN (default 200): learn's budget; H2H (default "connect4:20,moba:60"):
# each h2h run's budget; PARTS (default "learn ratings h2h cost"); ARGS: more bench options (e.g.
# "--h2h-reuse-learn", "--learn-steps N"); DEVICE=cpu tries the script where there is no GPU; TESTS: a
# pytest selection to run first (e.g. "tests/test_cuda_graphs.py -k selfplay"), its result in summary.txt.
# In $OUT: selfplay_gpu.json (rewritten after every figure), selfplay_<run>.jsonl (every metric row of
# every run, as it comes), table.txt, bench.log (the bench's output) and summary.txt (this log, the table).
set -u
export PYTHONUNBUFFERED=1
DEADLINE=${DEADLINE:-570}; LEARN=${LEARN:-200}; H2H=${H2H:-connect4:20,moba:60}
PARTS=${PARTS:-learn ratings h2h cost}; ARGS=${ARGS:-}; DEVICE=${DEVICE:-cuda}
T0=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.txt"; }
source bench/device_setup.sh
shoal_setup /tmp/build.log || { cp /tmp/build.log "$OUT/"; tail -20 /tmp/build.log; exit 1; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU")
log "$gpu, $(nproc) cpus, $(python3 -c 'import torch; print(torch.__version__)'), $(left) s left"
if [ -n "${TESTS:-}" ]; then
  # shellcheck disable=SC2086  # TESTS is a pytest selection
  python3 -m pytest -q -p no:cacheprovider $TESTS > "$OUT/pytest.txt" 2>&1
  log "tests rc=$? $(tail -1 "$OUT/pytest.txt")"
fi
# The bench sizes its parts to end 10 s before the deadline; timeout is the backstop 5 s before it. What a
# killed bench had measured is in selfplay_gpu.json and table.txt already.
# shellcheck disable=SC2086  # PARTS and ARGS are word lists
timeout $(( $(left) - 5 )) python3 bench/selfplay_bench.py $PARTS --device "$DEVICE" \
  --deadline $(( $(left) - 10 )) --learn-seconds "$LEARN" --h2h-seconds "$H2H" \
  --out "$OUT/selfplay_gpu.json" --table "$OUT/table.txt" --logs "$OUT" $ARGS \
  > "$OUT/bench.log" 2>&1
rc=$?
log "selfplay_bench rc=$rc$([ $rc = 124 ] && echo ', stopped by the timeout')"
grep -E "Error|Traceback" "$OUT/bench.log" | head -5 | tee -a "$OUT/summary.txt"
[ -f "$OUT/table.txt" ] && tee -a "$OUT/summary.txt" < "$OUT/table.txt"
log done
