# Sourced by the device scripts (gpu_compare.sh, gpu_variants.sh, protein_device.sh), run from the repo root.

# shoal on the device: the carried .whl wheels the image lacks, then the cffi extension built there.
shoal_setup() {  # LOG
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/shoalsite .whl/*.whl \
    > "$1" 2>&1
  export PYTHONPATH=/tmp/shoalsite:$PWD
  python3 -c "from services.cli import main; main()" env build >> "$1" 2>&1
}

# PufferLib 3.0 from .carry (prepare_carry.sh) into its own site dir, /tmp/site: it needs gymnasium 0.29,
# shoal 1.x. Appends "puffer build rc=N secs=S" to LOG.
puffer_build() {  # LOG
  local started rc
  started=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .carry/whl/*.whl
  cp -r .carry/src/pufferlib-3.0.0 /tmp/plsrc
  ( cd /tmp/plsrc && CC=gcc CXX=g++ TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=12 PYTHONPATH=/tmp/site python3 -m pip install -v \
      --no-build-isolation --no-deps --no-cache-dir --target /tmp/site . ) > "$1" 2>&1
  rc=$?
  echo "puffer build rc=$rc secs=$(( $(date +%s) - started ))" >> "$1"
  return $rc
}
