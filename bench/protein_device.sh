#!/bin/bash
# One device call: PufferLib 3.0's Protein through bench/sweep_bench.py on the device's cores (each of its
# suggestions takes about 7 s on one thread, so the protocol does not fit on dev's 2 cores).
#   run(kind="nvidia-h200", carry=[".carry"], timeout_s=600,
#       command="SEEDS=2 FAMILIES=held_out JOBS=8 BUDGET=500 bash bench/protein_device.sh")
# .carry is /work/shared/anchors/pufferlib3's prepare_carry.sh output. pufferlib.sweep is plain Python: the
# carried wheels and the source tree suffice, nothing is built. Sequential and parallel-8 sweeps go side by
# side, JOBS worker processes each, until BUDGET seconds, over the families without a categorical (Protein
# has none). Sweeps already in bench/data/protein_histories.tgz are reused, so a larger SEEDS runs only the
# new seeds. The tables land in $OUT, and every sweep's history in $OUT/protein_histories.tgz: copy it over
# bench/data/protein_histories.tgz, and unpack it into a --save folder on dev to put Protein in the same
# tables as the other methods.
set -u
export PYTHONUNBUFFERED=1
source bench/device_setup.sh
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/whl/*.whl > /dev/null 2>&1
printf '#!/bin/sh\nPYTHONPATH=/tmp/site:%s/.carry/src/pufferlib-3.0.0:%s exec python3 "$@"\n' "$PWD" "$PWD" \
  > /tmp/protein_python && chmod +x /tmp/protein_python
mkdir -p /tmp/protein_save && tar xzf bench/data/protein_histories.tgz -C /tmp/protein_save
for p in 1 8; do
  python3 bench/sweep_bench.py --seeds "${SEEDS:-2}" --families "${FAMILIES:-all}" --methods protein --parallel $p \
    --protein-python /tmp/protein_python --protein-jobs "${JOBS:-8}" --protein-budget-s "${BUDGET:-500}" \
    --save /tmp/protein_save --no-latency > "$OUT/protein_p$p.txt" 2>&1 &
done
wait
tar czf "$OUT/protein_histories.tgz" -C /tmp/protein_save .
cat "$OUT"/protein_p*.txt
