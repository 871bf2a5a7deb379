#!/bin/bash
# One device call (issue 14 part 4): a real breakout sweep on one GPU, shoal's platform against PufferLib
# 3.0's Protein, each with the same budget of training seconds (bench/gpu_sweep.py says how).
#   bash bench/device_wheels.sh                       # here, once: .whl (shoal's wheels the image lacks)
#   bash ../shared/anchors/pufferlib3/prepare_carry.sh .carry   # here, once: .carry (PufferLib 3.0)
#   run(kind="nvidia-h200", carry=[".whl", ".carry"], timeout_s=600, command="bash bench/gpu_sweep.sh")
# SWEEP_BUDGET: training seconds per method (default 180). SWEEP_METHODS: "ours,protein" (default, in
# that order), or one of them, to give one method a whole call. SWEEP_ARGS: more gpu_sweep.py options
# (e.g. "--steps-min 2e6 --steps-mean 6e6", a centre that is too short to solve). WALL: seconds the command may take
# (default 585); the sweep script caps each method's wall clock so that both report within it.
# Back in $OUT: gpu_sweep.json (every trial), summary.txt (the tables), logs.tgz (platform, Protein and
# setup logs, the platform's SQLite database).
export PYTHONUNBUFFERED=1
T0=$(date +%s); WALL=${WALL:-585}; R=/tmp/res; mkdir -p $R /tmp/gs
el(){ echo $(( $(date +%s) - T0 )); }
log(){ echo "[$(el)s] $*" | tee -a $R/summary.txt; }
snap(){ ( cd /tmp/gs && find . -maxdepth 2 \( -name platform.log -o -name shoal.db -o -name protein.stderr \) \
            -print0 | tar czf $R/sweep_files.tgz --null -T - ) 2>/dev/null
        tar czf $OUT/logs.tgz -C /tmp res 2>/dev/null; cp $R/summary.txt $OUT/ 2>/dev/null; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv; nproc
  python3 -c "import sys,torch;print(sys.version);print('torch',torch.__version__,torch.version.cuda)"; } > $R/sysinfo.txt 2>&1
log "device: $(nvidia-smi --query-gpu=name --format=csv,noheader) x$(nvidia-smi -L | wc -l), $(nproc) cpus"

# shoal: the carried wheels into /tmp/shoalsite, then the cffi extension (device_setup.sh).
source bench/device_setup.sh
shoal_setup $R/shoal_build.log; log "shoal build rc=$?"
python3 -c "import services.api.app, services.trainer.tasks, services.sweeper.tasks, envs_c; envs_c.make('breakout', 4)" \
  >> $R/shoal_build.log 2>&1; rc=$?; log "shoal imports rc=$rc"
[ $rc = 0 ] || { tail -30 $R/shoal_build.log; snap; exit 1; }

# Protein: pufferlib.sweep is plain Python (torch, pyro, numpy); it imports pufferlib, which needs only the
# carried pure-Python wheels (gymnasium 0.29, gym, pyro-ppl) and its source tree, no build.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .carry/whl/*.whl \
  > $R/protein_setup.log 2>&1
export PROTEIN_PYTHONPATH=/tmp/site:$PWD/.carry/src/pufferlib-3.0.0
( cd /tmp && PYTHONPATH=$PROTEIN_PYTHONPATH python3 -c "import pufferlib.sweep" ) >> $R/protein_setup.log 2>&1
log "protein setup rc=$?"
snap

# The sweeps. The script prints its tables and writes gpu_sweep.json also when stopped by the timeout.
LEFT=$(( WALL - $(el) ))
log "sweeps: budget ${SWEEP_BUDGET:-180}s per method, ${LEFT}s of wall clock left"
nvidia-smi dmon -s u -d 2 > $R/dmon.txt 2>&1 & DM=$!
timeout --signal=TERM --kill-after=15 $(( LEFT - 8 )) python3 bench/gpu_sweep.py \
  --methods "${SWEEP_METHODS:-ours,protein}" --wall $(( LEFT - 25 )) --scratch /tmp/gs \
  --out $OUT/gpu_sweep.json ${SWEEP_ARGS:-} > $R/gpu_sweep.log 2>&1
log "gpu_sweep rc=$?"
kill $DM 2>/dev/null
sed -n '/^### breakout sweep/,$p' $R/gpu_sweep.log | tee -a $R/summary.txt
grep -E '\] \[(ours|protein)\]' $R/gpu_sweep.log | tail -80 >> $R/summary.txt
log end; snap
