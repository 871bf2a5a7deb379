#!/bin/bash
# One device call: shoal vs PufferLib 3.0 on the same GPU machine.
#   run(kind=nvidia-h100-x1, carry=[".whl", ".carry"], timeout_s=600):  bash bench/gpu_compare.sh
#   PART=followup (on nvidia-h200-x2): pong pair again, then (d) two breakout runs at once, one per GPU and
#   half the cores each, against one alone on the same half; then the bench.
#   PART=dual (on nvidia-h200-x2): (d) alone, then the bench, no PufferLib.
#   PART=bench (nvidia-h100-x1, timeout_s=570): PufferLib's pong, then `shoal bench train --envs all` with
#   every environment's defaults, the per-env budget split over what is left (BUDGET, default 555 s here).
# .whl: shoal's pure-Python/cp312 wheels the image lacks; .carry: /work/shared/anchors/pufferlib3's
# prepare_carry.sh output (+ analyze.py). Everything lands in $OUT (logs.tgz, the bench CSV/PNG, summary.txt).
export PYTHONUNBUFFERED=1
T0=$(date +%s); REPO=$PWD; R=/tmp/res; mkdir -p $R /tmp/runs; BUDGET=${BUDGET:-$([ "$PART" = bench ] && echo 555 || echo 565)}
el(){ echo $(( $(date +%s) - T0 )); }
log(){ echo "[$(el)s] $*" | tee -a $R/summary.txt; }
snap(){ tar czf $OUT/logs.tgz -C /tmp res 2>/dev/null; cp $R/summary.txt $OUT/ 2>/dev/null; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv; nproc
  python3 -c "import sys,torch;print(sys.version);print('torch',torch.__version__,torch.version.cuda)"; } > $R/sysinfo.txt 2>&1
log "device: $(nvidia-smi --query-gpu=name --format=csv,noheader) x$(nvidia-smi -L | wc -l), $(nproc) cpus"

source bench/device_setup.sh
[ "$PART" != dual ] && { puffer_build $R/puffer_build.log & }
BUILD=$!

# --- shoal: wheels, cffi extension, correctness on the GPU ---
shoal_setup $R/shoal_build.log; log "shoal build rc=$?"
if [ "$PART" != bench ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_ppo.py tests/test_cuda_graphs.py > $R/pytest.log 2>&1; log "pytest test_ppo test_cuda_graphs rc=$? $(tail -1 $R/pytest.log)"
  for v in "" "--set policy.recurrent=\"lstm\"" "--set train.optimizer=\"muon\""; do
    python3 bench/gpu_train.py cartpole 25 $R/check.jsonl --threshold 0.5 --set train.device='"cuda"' \
      --set train.total_timesteps=60000 --set train.num_envs=64 $v > $R/check.log 2>&1
    log "check cartpole cuda [$v] rc=$? $(grep SUMMARY $R/check.log | cut -c1-330)"
  done
fi
wait $BUILD; [ "$PART" != dual ] && log "$(tail -1 $R/puffer_build.log)"; snap

# --- timed runs, one at a time, each with GPU utilisation sampled ---
puffer(){ tag=$1; env=$2; cap=$3
  nvidia-smi dmon -s u -d 1 > $R/${tag}_dmon.txt 2>&1 & DM=$!
  ( cd /tmp/runs && PYTHONPATH=/tmp/site timeout $(( cap + 40 )) python3 $REPO/.carry/run_train.py $env $cap $R/${tag}.jsonl > /tmp/runs/$tag.out 2> $R/${tag}.stderr )
  log "$tag rc=$?"; kill $DM; snap; }
ours(){ tag=$1; env=$2; cap=$3
  nvidia-smi dmon -s u -d 1 > $R/${tag}_dmon.txt 2>&1 & DM=$!
  timeout $(( cap + 60 )) python3 bench/gpu_train.py $env $cap /tmp/runs/$tag.jsonl > $R/$tag.log 2>&1
  log "$tag rc=$? $(grep SUMMARY $R/$tag.log)"; kill $DM; cp /tmp/runs/$tag.jsonl $R/shoal_$tag.jsonl.txt; snap; }
[ "$PART" != dual ] && puffer puffer_pong puffer_pong 45
if [ "$PART" = bench ]; then
  :  # shoal's pong runs inside the bench below; its curve is in bench_train_curves.csv
elif [ "$PART" = followup ] || [ "$PART" = dual ]; then
  [ "$PART" = followup ] && ours shoal_pong pong 40
  # (d) the same breakout run alone on GPU 0 with cores 0-15, then two at once: GPU 0 + cores 0-15, GPU 1 + 16-31
  H=$(( $(nproc) / 2 )); RUN="python3 bench/gpu_train.py breakout 25 --set train.total_timesteps=400000000"
  CUDA_VISIBLE_DEVICES=0 taskset -c 0-$((H-1)) $RUN /tmp/runs/alone.jsonl > $R/dual_alone.log 2>&1
  log "alone: $(grep SUMMARY $R/dual_alone.log | cut -c1-200)"
  CUDA_VISIBLE_DEVICES=0 taskset -c 0-$((H-1)) $RUN /tmp/runs/pair0.jsonl > $R/dual_0.log 2>&1 & P0=$!
  CUDA_VISIBLE_DEVICES=1 taskset -c $H-$((2*H-1)) $RUN /tmp/runs/pair1.jsonl > $R/dual_1.log 2>&1 & P1=$!
  wait $P0 $P1
  log "pair gpu0: $(grep SUMMARY $R/dual_0.log | cut -c1-200)"; log "pair gpu1: $(grep SUMMARY $R/dual_1.log | cut -c1-200)"
else
  ours shoal_pong pong 40
  puffer puffer_breakout puffer_breakout 90
  ours shoal_breakout breakout 80
fi
mkdir -p /tmp/pa && cp $R/puffer_*.jsonl $R/puffer_*_dmon.txt /tmp/pa/ 2>/dev/null
( cd /tmp/res && PYTHONPATH=/tmp/site python3 $REPO/.carry/analyze.py /tmp/pa ) > $R/puffer_analysis.txt 2>&1
cat $R/puffer_analysis.txt | tee -a $R/summary.txt; snap

# --- (c) every environment with its defaults, budget split over what is left ---
# Each environment also spends a few seconds outside its budget (start-up, the final evaluation).
LEFT=$(( BUDGET - $(el) ))
if [ "$PART" = bench ]; then S=$(( (LEFT - 30) * 10 / 8 / 12 )); else S=$(( (LEFT - 25) * 10 / 8 / 13 )); fi
[ $S -gt 60 ] && S=60
log "bench train: ${LEFT}s left, S=${S}s per env"
if [ $S -ge 8 ]; then
  timeout $(( LEFT - 5 )) python3 -m services.cli bench train --envs all --budget-seconds $S --device cuda --out $OUT/bench > $R/bench_train.log 2>&1
  log "bench train rc=$?"; tail -14 $R/bench_train.log | tee -a $R/summary.txt
fi
log end; snap
