"""Compiles each environment into its own cffi module on first use, cached by content hash.

Built-in and user environments take the same path. The declarations are generated from the spec file,
with the struct's buffer and configuration fields spelled out, so cffi's generated code checks them against
the real struct: a field the header lacks, or one of another type, is a compile error, and the compiler's
own message is what the caller sees (EnvBuildError).

The cache (SHOAL_ENV_CACHE, default ~/.cache/shoal/envs) is shared by every process of a machine. A module's
file name holds the hash of everything that goes into it: the generated C, every header's content, the
compiler command and the Python ABI. Builders take a per-module file lock, compile in a private temporary
directory and publish with an atomic rename, so readers never see a half-written file and two workers
starting at once compile once.
`shoal env build` warms the cache (an image build does it, so workers start with the built-ins ready).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

from cffi import FFI
from cffi import __version__ as CFFI_VERSION
from cffi.recompiler import make_c_source

from envs_c.registry import HERE, EnvDef, lookup

# -O3 without -ffast-math (the NaN checks on actions must survive) and without -march=native (a cache on a
# shared volume may serve another CPU). The C driver (envs_c/driver.c) compiles with exactly these flags.
CFLAGS = ["-O3", "-std=c11", "-Wall"]
# cffi checks a declared field by taking a pointer of the declared type to it: make a mismatch an error.
STRICT = ["-Werror=incompatible-pointer-types", "-Werror=pointer-sign", "-Werror=int-conversion"]
CTYPES = {"float32": "float", "uint8": "uint8_t", "int8": "int8_t", "int32": "int32_t"}

POOL = """
typedef struct ShoalPool ShoalPool;
ShoalPool* shoal_pool_new(int);
void shoal_pool_run(ShoalPool*, void (*)(void*, int, int), void*, int);
void shoal_pool_step(ShoalPool*, void (*)(void*, int, int), void*, int, void*, void*, size_t);
void shoal_pool_free(ShoalPool*);
typedef struct { void* envs; const int32_t* index; void* out; } ShoalSubset;
typedef struct {
    void* envs; int seat_agents; const int32_t* seat_rows; size_t obs_bytes; size_t act_bytes;
    uint8_t* seat; const uint8_t* bot; const char* actions; const char* their_actions;
    char* observations; float* rewards; uint8_t* terminals; uint8_t* truncations; char* their_observations;
    double* returns; uint8_t* ended; int step;
} ShoalSeats;
"""


class EnvBuildError(RuntimeError):
    """An environment that does not compile or load; the message carries the compiler's or cffi's."""


def declarations(env: EnvDef) -> str:
    log = " ".join(f"float {name};" for name in env.log_fields)
    config = " ".join(f"{p.ctype} {p.name};" for p in env.params)
    obs, act = CTYPES[env.obs_dtype], CTYPES[env.action.dtype]
    n, s = env.name, env.struct
    up = n.upper()
    return f"""
typedef struct {{ {log} }} {env.log_struct};
typedef struct {{
    {obs}* observations; {act}* actions; float* rewards; uint8_t* terminals; uint8_t* truncations;
    uint64_t rng; {env.log_struct} log; {config} ...;
}} {s};
#define {up}_RENDER_W ...
#define {up}_RENDER_H ...
void {n}_vec_sizes({s}*, int*);
int {n}_vec_init({s}*, int, int, int, int, void*, void*, float*, uint8_t*, uint8_t*, uint64_t);
void {n}_vec_reset({s}*, int, uint64_t);
void {n}_vec_step({s}*, int, int);
void {n}_vec_log({s}*, int, float*);
void {n}_vec_close({s}*, int);
void {n}_vec_scripted_some(void*, int, int);
void {n}_vec_log_some({s}*, const int32_t*, int, float*);
void {n}_vec_step_any(void*, int, int);
void {n}_vec_seats(void*, int, int);
void {n}_render({s}*, uint8_t*);
"""


def _source(env: EnvDef) -> str:
    return f'#include "pool.h"\n#include "{env.header}"\n'


def _emit(env: EnvDef, module: str, path: Path) -> None:
    """Write cffi's C for the module (make_c_source is ffi.emit_c_code without its progress print)."""
    ffi = FFI()
    ffi.cdef(POOL + declarations(env))
    make_c_source(ffi, module, _source(env), str(path), verbose=False)


def compile_command(env: EnvDef, source: Path, out: Path, extra: list[str] | None = None) -> list[str]:
    """The same flags setuptools gives a cffi extension (Python's CFLAGS, -fPIC, its headers), plus ours."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    ldshared = (sysconfig.get_config_var("LDSHARED") or "cc -shared").split()[1:]
    return [
        *cc.split(),
        *(sysconfig.get_config_var("CFLAGS") or "").split(),
        *(sysconfig.get_config_var("CCSHARED") or "-fPIC").split(),
        f"-I{sysconfig.get_paths()['include']}",
        f"-I{HERE}",
        f"-I{env.directory}",
        *CFLAGS,
        *STRICT,
        *(extra or []),
        *os.environ.get("SHOAL_CFLAGS", "").split(),
        str(source),
        "-o",
        str(out),
        *ldshared,
        "-pthread",
        "-lm",
        *os.environ.get("SHOAL_LDFLAGS", "").split(),
    ]


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shoal" / "envs"
    return Path(os.environ.get("SHOAL_ENV_CACHE") or default)


def module_key(env: EnvDef) -> str:
    """Hash of everything the compiled module depends on; its file name, so a change is a new module."""
    digest = hashlib.sha256()
    for part in (
        POOL,
        declarations(env),
        _source(env),
        CFFI_VERSION,
        sys.implementation.cache_tag,
        " ".join(compile_command(env, Path("x.c"), Path("x.so"))),
    ):
        digest.update(part.encode())
    for path in (HERE / "pool.h", *env.sources):
        digest.update(path.read_bytes())
    return f"_shoal_{env.name}_{digest.hexdigest()[:20]}"


_loaded: dict[str, ModuleType] = {}
_lock = threading.Lock()


def load(name: str) -> ModuleType:
    """The compiled module of environment `name` (`.ffi`, `.lib`), building it if the cache lacks it."""
    env = lookup(name)
    module = module_key(env)
    with _lock:  # threads of one process share a module; processes share the file
        if module not in _loaded:
            _loaded[module] = _import(env, module, _ensure_built(env, module))
        return _loaded[module]


def _ensure_built(env: EnvDef, module: str) -> Path:
    cache = cache_dir()
    target = cache / f"{module}{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{module}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        if not target.exists():  # another process built it while this one waited
            build(env, module, target)
    return target


def build(env: EnvDef, module: str, target: Path, extra_cflags: list[str] | None = None) -> float:
    """Compile into a temporary directory beside `target`, then rename it into place; returns seconds."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{module}.", dir=target.parent))
    try:
        source = work / f"{module}.c"
        _emit(env, module, source)
        out = work / target.name
        cmd = compile_command(env, source, out, extra_cflags)
        # LC_ALL=C: plain ASCII quotes in the message, which ends up in logs and the database.
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=work, env={**os.environ, "LC_ALL": "C"}
        )
        if proc.returncode != 0:
            raise EnvBuildError(
                f"{env.name}: {env.directory / env.header} does not compile against its spec "
                f"({env.source}):\n{_readable(proc.stderr, work)}"
            )
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return time.perf_counter() - started


def _readable(stderr: str, work: Path) -> str:
    """The compiler's message, with the generated file's temporary path shortened."""
    return stderr.replace(f"{work}/", "").strip()


def _import(env: EnvDef, module: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module, path)
    # Always a spec with a loader: the path is an existing extension module's, not a directory.
    assert spec is not None and spec.loader is not None
    try:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        # cffi checks a struct's declared layout when the type is first used: do it here, not mid-run.
        mod.ffi.sizeof(env.struct)
        mod.ffi.sizeof(env.log_struct)
    except Exception as e:  # cffi raises several types for a layout its declarations disagree with
        raise EnvBuildError(
            f"{env.name}: the compiled module disagrees with its spec ({env.source}): {e}"
        ) from e
    return mod
