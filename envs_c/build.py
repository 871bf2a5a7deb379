"""cffi API-mode builder for every registered C environment.

setup.py points `cffi_modules` here, so installing the package compiles `envs_c._binding`. Declarations are
generated from the registry: cffi verifies each declared field against the real struct at compile time.
Extra compiler flags (sanitizers, say) come from SHOAL_CFLAGS.
"""

import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry import ENVS  # noqa: E402  (plain import: the package is not installed while it builds)


def declarations(env) -> str:
    log = " ".join(f"float {name};" for name in env.log_fields)
    config = " ".join(f"{p.ctype} {p.name};" for p in env.params)
    n, s = env.name, env.struct
    up = n.upper()
    return f"""
typedef struct {{ {log} }} {env.log_struct};
typedef struct {{ {config} ...; }} {s};
#define {up}_RENDER_W ...
#define {up}_RENDER_H ...
int {n}_vec_init({s}*, int, int, int, int, void*, void*, float*, uint8_t*, uint8_t*, uint64_t);
void {n}_vec_reset({s}*, int, uint64_t);
void {n}_vec_step({s}*, int, int);
void {n}_vec_log({s}*, int, float*);
void {n}_vec_close({s}*, int);
void {n}_vec_scripted({s}*, int, void*);
void {n}_vec_step_any(void*, int, int);
void {n}_render({s}*, uint8_t*);
"""


POOL = """
typedef struct ShoalPool ShoalPool;
ShoalPool* shoal_pool_new(int);
void shoal_pool_run(ShoalPool*, void (*)(void*, int, int), void*, int);
void shoal_pool_step(ShoalPool*, void (*)(void*, int, int), void*, int, void*, void*, size_t);
void shoal_pool_free(ShoalPool*);
"""

# -O3 without -ffast-math (the NaN checks on actions must survive) and without -march=native (the wheel may
# run on another CPU). The bench C driver compiles with exactly these flags.
CFLAGS = ["-O3", "-std=c11", "-Wall"]


ffibuilder = FFI()
ffibuilder.cdef(POOL + "".join(declarations(env) for env in ENVS.values()))
ffibuilder.set_source(
    "envs_c._binding",
    '#include "pool.h"\n' + "".join(f'#include "{env.header}"\n' for env in ENVS.values()),
    include_dirs=[str(HERE)],
    depends=[str(p) for p in HERE.glob("*.h")],
    extra_compile_args=[*CFLAGS, *os.environ.get("SHOAL_CFLAGS", "").split()],
    extra_link_args=["-pthread", *os.environ.get("SHOAL_LDFLAGS", "").split()],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
