#!/usr/bin/env bash
# Every C environment under AddressSanitizer + UndefinedBehaviorSanitizer, driven by the plain C driver
# (envs_c/driver.c) with valid, out-of-range, negative, extreme and NaN/inf actions, the scripted policy,
# log, render and reset. Each configuration runs STEPS vector steps (default 100000) of ENVS environments.
# Exits non-zero on the first sanitizer report (or a crash). Usage: bash bench/asan.sh [STEPS] [ENVS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${1:-100000}
ENVS=${2:-2}
PY=${PYTHON:-python3}
CC=${CC:-cc}
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
# The built-in environments only: user environments on SHOAL_ENV_PATH have `shoal env check`.
INCLUDES=$(SHOAL_ENV_PATH= "$PY" "$ROOT/envs_c/cdriver.py" "$BUILD/driver_envs.h")
# shellcheck disable=SC2086
"$CC" -O1 -g -std=c11 -Wall -Wextra -Werror -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=all \
  $INCLUDES -I"$BUILD" "$ROOT/envs_c/driver.c" -o "$BUILD/env_driver" -lm -pthread
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
# Each environment, and each game in both seat modes (bot opponent and two-seat self-play).
CONFIGS=(
  "cartpole"
  "squared"
  "breakout"
  "breakout --set frameskip=1"
  "pong"
  "pong --set opponent=1"
  "connect4"
  "connect4 --set opponent=1"
  "snake --set num_snakes=8 --set width=16 --set height=16 --set max_length=40"
  "snake"
  "reversi"
  "reversi --set opponent=1"
  "navigate"
  "moba"
  "moba --set opponent=1 --set team_size=5"
  "moba --set bot=0 --set max_steps=50"
  "cartpole --threads 2"
  "snake --threads 3"
  "connect4 --set opponent=1 --threads 2"
)
status=0
for config in "${CONFIGS[@]}"; do
  # shellcheck disable=SC2086
  if ! out=$("$BUILD/env_driver" $config --asan --steps "$STEPS" --envs "$ENVS" 2>&1); then
    echo "FAIL: $config"
    echo "$out" | tail -40
    status=1
    break
  fi
  echo "ok: $config $(echo "$out" | tail -1)"
done
# The thread pool (envs_c/pool.h) under ThreadSanitizer: uneven batches over 3 threads, with action copies.
if [ $status -eq 0 ]; then
  # shellcheck disable=SC2086
  "$CC" -O1 -g -std=c11 -Wall -Wextra -Werror -fsanitize=thread \
    $INCLUDES -I"$BUILD" "$ROOT/envs_c/driver.c" -o "$BUILD/env_driver_tsan" -lm -pthread
  for config in "cartpole" "snake --set num_snakes=4" "connect4 --set opponent=1"; do
    # shellcheck disable=SC2086
    if ! out=$(TSAN_OPTIONS=halt_on_error=1:exitcode=88 "$BUILD/env_driver_tsan" $config --asan \
        --steps $((STEPS / 10)) --envs 37 --threads 3 2>&1); then
      echo "FAIL (tsan): $config"; echo "$out" | tail -40; status=1; break
    fi
    echo "ok (tsan, 3 threads): $config $(echo "$out" | tail -1)"
  done
fi
# Every registered environment must appear above.
for name in $(SHOAL_ENV_PATH= "$PY" -c "import sys; sys.path.insert(0, '$ROOT/envs_c'); from registry import ENVS; print(' '.join(ENVS))"); do
  printf '%s\n' "${CONFIGS[@]}" | grep -q "^$name\b" || { echo "FAIL: $name has no asan configuration"; status=1; }
done
[ $status -eq 0 ] && echo "asan/ubsan/tsan: clean"
exit $status
