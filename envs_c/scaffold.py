"""`shoal env new NAME`: a working environment to start from, a C header and its spec file.

The generated game (walk to a goal on a small grid) compiles, passes `shoal env check` and trains with the
defaults in its spec; it shows every piece of the contract in envs_c/env.h, so users edit it rather than
start from a blank page.
"""

from __future__ import annotations

from pathlib import Path

from envs_c.registry import NAME_RE, SUFFIX

HEADER = r"""/* __name__: walk to the goal on a grid. Scaffolded by `shoal env new`: edit it into your game.
 *
 * The contract (envs_c/env.h): a struct whose first fields are the buffers Python owns, then the RNG state
 * and the Log; init, reset, step, render, close and scripted; num_agents and obs_size; SHOAL_VECTOR last.
 * __name__.env.toml beside this file describes the same struct to Python. Keep the two in step:
 * `shoal env check __name__` compiles them together and says where they differ.
 *
 * Observation: 4 floats in [0, 1], agent x, agent y, goal x, goal y over (size - 1).
 * Actions: 0 stay, 1 up, 2 down, 3 left, 4 right; walking into the edge stays put.
 * Reward: +1 on reaching the goal, +0.1 per step closer and -0.1 per step away.
 * perf = shortest path length / steps taken when the goal is reached, 0 on timeout.
 */
#ifndef SHOAL___NAME___H
#define SHOAL___NAME___H

#include "env.h"

#define __NAME___OBS 4
#define __NAME___ACTIONS 5
#define __NAME___MAX_SIZE 16
/* Frames have a fixed size (Python allocates them from these two macros). */
#define __NAME___RENDER_W 192
#define __NAME___RENDER_H 192

/* Floats only: perf, score, episode_return, episode_length first (SHOAL_LOG_FIELDS), n (episodes) last. */
typedef struct {
    SHOAL_LOG_FIELDS
    float invalid_actions;
    float n;
} __Name__Log;

typedef struct {
    /* The buffers Python owns (observation type, action type), the RNG state and the Log. */
    SHOAL_ENV_FIELDS(float, int32_t, __Name__Log)
    /* Parameters: Python writes them before init, checked against the spec's bounds. */
    int size;
    int max_steps;
    /* State: fixed size, so stepping never allocates. */
    int ax, ay, gx, gy;
    int tick;
    int start_distance;
    float episode_return;
    float invalid_actions;
} __Name__;

/* Agents per environment and observation values per agent: expressions that may read `env`. */
SHOAL_SIZES(__name__, __Name__, 1, __NAME___OBS)

static inline int __name___distance(const __Name__* env) {
    return abs(env->ax - env->gx) + abs(env->ay - env->gy);
}

static void __name___observe(__Name__* env) {
    const float scale = 1.0f / (float)(env->size - 1);
    env->observations[0] = (float)env->ax * scale;
    env->observations[1] = (float)env->ay * scale;
    env->observations[2] = (float)env->gx * scale;
    env->observations[3] = (float)env->gy * scale;
}

static void __name___reset(__Name__* env) {
    env->ax = shoal_randint(&env->rng, env->size);
    env->ay = shoal_randint(&env->rng, env->size);
    do {
        env->gx = shoal_randint(&env->rng, env->size);
        env->gy = shoal_randint(&env->rng, env->size);
    } while (env->gx == env->ax && env->gy == env->ay);
    env->tick = 0;
    env->start_distance = __name___distance(env);
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    __name___observe(env);
}

static void __name___init(__Name__* env) {
    /* C never trusts its inputs: clamp again what Python validated. */
    env->size = shoal_clampi(env->size, 2, __NAME___MAX_SIZE);
    env->max_steps = shoal_clampi(env->max_steps, 1, 100000);
    __name___reset(env);
}

static void __name___step(__Name__* env) {
    static const int dx[__NAME___ACTIONS] = {0, 0, 0, -1, 1};
    static const int dy[__NAME___ACTIONS] = {0, -1, 1, 0, 0};
    /* Out-of-range actions are clamped and counted, never used as an index. */
    int a = shoal_discrete(env->actions[0], __NAME___ACTIONS, &env->invalid_actions);
    int before = __name___distance(env);
    env->ax = shoal_clampi(env->ax + dx[a], 0, env->size - 1);
    env->ay = shoal_clampi(env->ay + dy[a], 0, env->size - 1);
    env->tick += 1;
    int after = __name___distance(env);
    int reached = after == 0;
    int timed_out = !reached && env->tick >= env->max_steps;
    float reward = 0.1f * (float)(before - after) + (reached ? 1.0f : 0.0f);
    /* Agent 0's reward, terminal flag (the episode ended) and truncation flag (it was cut off). */
    SHOAL_STEP_RESULT(env, 0, reward, reached, timed_out);
    env->episode_return += reward;
    if (reached || timed_out) {
        /* perf, score, episode_return and episode_length, and one more episode in n; then our own field. */
        float perf = reached ? (float)env->start_distance / (float)env->tick : 0.0f;
        SHOAL_LOG_EPISODE(env->log, perf, (float)reached, env->episode_return, (float)env->tick);
        env->log.invalid_actions += env->invalid_actions;
        /* Reset in place: the observation written now is the next episode's first. */
        __name___reset(env);
        return;
    }
    __name___observe(env);
}

static void __name___render(__Name__* env, uint8_t* rgb) {
    memset(rgb, 30, (size_t)__NAME___RENDER_W * __NAME___RENDER_H * 3);
    const int c = __NAME___RENDER_W / env->size, w = __NAME___RENDER_W, h = __NAME___RENDER_H;
    /* Rectangles clipped to the frame: the goal, then the agent. */
    shoal_fill_rect(rgb, w, h, env->gx * c + 1, env->gy * c + 1, c - 2, c - 2, 220, 60, 60);
    shoal_fill_rect(rgb, w, h, env->ax * c + 2, env->ay * c + 2, c - 4, c - 4, 80, 200, 120);
}

/* Frees what init allocated: nothing here. */
static void __name___close(__Name__* env) { (void)env; }

/* A heuristic policy (tests compare it with random play): close the larger gap first. */
static void __name___scripted(__Name__* env, int32_t* out) {
    int x = env->gx - env->ax, y = env->gy - env->ay;
    if (abs(x) >= abs(y)) out[0] = x > 0 ? 4 : (x < 0 ? 3 : 0);
    else out[0] = y > 0 ? 2 : 1;
}

/* Batched entry points: (name, struct, observation type, action type, action columns per agent). */
SHOAL_VECTOR(__name__, __Name__, float, int32_t, 1)

#endif
"""

SPEC = """# __name__: the spec of __name__.h (docs/envs.md explains every key). Python sizes the buffers,
# validates settings and declares the struct to cffi from it; cffi checks it against the header when
# the environment is compiled.
struct = "__Name__"
log_struct = "__Name__Log"
# The C Log struct's fields in order: perf, score, episode_return, episode_length first and n last.
log = ["perf", "score", "episode_return", "episode_length", "invalid_actions", "n"]
perf = "shortest path length / steps taken when the goal is reached, 0 on timeout"
solved = 0.9
# agents = 1     # agents per environment: a number, or the name of an int parameter
# players = 2    # a two-player game: needs an int parameter "opponent" in [0, 1]

[observation]
shape = [4]
dtype = "float32"  # float32, uint8 or int8
low = 0.0
high = 1.0

[action]
kind = "discrete"  # discrete (n), multidiscrete (nvec) or continuous (size, low, high)
n = 5

[params.size]
type = "int"
default = 5
low = 2
high = 16
doc = "grid side in cells"

[params.max_steps]
type = "int"
default = 50
low = 1
high = 100000
doc = "steps before truncation"

# Training defaults for this environment's runs (any key of the run configuration; a run may override).
[train]
total_timesteps = 300000
num_envs = 64
num_steps = 32
minibatch_size = 1024
learning_rate = 0.005
gamma = 0.95
ent_coef = 0.005

[policy]
hidden_size = 64
"""


def camel(name: str) -> str:
    """my_grid -> MyGrid: the struct name."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def render(template: str, name: str) -> str:
    out = template.replace("__NAME__", name.upper()).replace("__Name__", camel(name))
    return out.replace("__name__", name)


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write NAME.h and NAME.env.toml into `directory`; refuses to overwrite either."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid environment name ({NAME_RE.pattern}: it names C symbols)")
    files = {directory / f"{name}.h": render(HEADER, name), directory / f"{name}{SUFFIX}": render(SPEC, name)}
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise FileExistsError(f"not overwriting {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)
