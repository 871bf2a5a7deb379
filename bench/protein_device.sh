#!/bin/bash
# One device call: PufferLib 3.0's Protein through bench/sweep_bench.py on the device's cores (each of its
# suggestions takes 6-16 s on dev's 2 cores, so the full protocol does not fit there).
#   run(kind="nvidia-h200-x2", carry=[".carry"], timeout_s=600):
#     SEEDS=5 JOBS=16 BUDGET=480 bash bench/protein_device.sh   (32 cores: 15 runs per parallelism at once)
# .carry is /work/shared/anchors/pufferlib3's prepare_carry.sh output. Sequential and parallel-8 runs go
# side by side, JOBS worker processes each, until BUDGET seconds, over the families without a categorical
# (Protein has none). Sweeps already in bench/data/protein_histories.tgz are reused, so a larger SEEDS runs
# only the new seeds (the histories of the old three-task benchmark in it are not read). The tables land in
# $OUT, and every run's history in $OUT/protein_histories.tgz: copy it over bench/data/protein_histories.tgz,
# and unpack it into a --save folder on dev to put Protein in the same tables as the other methods
# (sweep_bench.py --save DIR reuses those runs).
set -u
export PYTHONUNBUFFERED=1
source bench/device_setup.sh
# Protein needs no CUDA extension (NO_OCEAN=1 breaks its setup.py, so the C envs are still built).
NO_TRAIN=1 puffer_build /tmp/protein_build.log || { tail -20 /tmp/protein_build.log; exit 1; }
mkdir -p /tmp/protein_save && tar xzf bench/data/protein_histories.tgz -C /tmp/protein_save
printf '#!/bin/sh\nPYTHONPATH=/tmp/site exec python3 "$@"\n' > /tmp/protein_python && chmod +x /tmp/protein_python
for p in 1 8; do
  python3 bench/sweep_bench.py --seeds "${SEEDS:-5}" --families "${FAMILIES:-all}" --methods protein --parallel $p \
    --protein-python /tmp/protein_python --protein-jobs "${JOBS:-8}" --protein-budget-s "${BUDGET:-420}" \
    --save /tmp/protein_save --no-latency > "$OUT/protein_p$p.txt" 2>&1 &
done
wait
tar czf "$OUT/protein_histories.tgz" -C /tmp/protein_save .
cat "$OUT"/protein_p*.txt
