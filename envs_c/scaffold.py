"""`shoal env new NAME [--players 2]`: a working environment to start from, a C header and its spec file.

Two templates, each a complete game that compiles, passes `shoal env check` and trains with the defaults in
its spec: a single-agent one (walk to a goal on a small grid) and, with `--players 2`, a two-player game
(one-pile Nim against a scripted bot, with seats for self-play and Elo ratings). Each shows every piece of
the contract in envs_c/env.h, so users edit it rather than start from a blank page. The parts the two
templates share (the header's opening comment and include guard, its closing SHOAL_VECTOR, the spec's
preamble and the comment over its training defaults) are written once, below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envs_c.registry import NAME_RE, SUFFIX

# The header's first line and the contract paragraph, then the template's own description (`__about__`).
HEADER_OPENING = r"""/* __name__: __summary__. Scaffolded by `shoal env new`: edit it into your game.
 *
 * The contract (envs_c/env.h): a struct whose first fields are the buffers Python owns, then the RNG state
 * and the Log; init, reset, step, render, close and scripted; num_agents and obs_size; SHOAL_VECTOR last.
 * __name__.env.toml beside this file describes the same struct to Python. Keep the two in step:
 * `shoal env check __name__` compiles them together and says where they differ.
 *
__about__ */
#ifndef SHOAL___NAME___H
#define SHOAL___NAME___H

#include "env.h"

"""

HEADER_CLOSING = r"""
/* Batched entry points: (name, struct, observation type, action type, action columns per agent). */
SHOAL_VECTOR(__name__, __Name__, float, int32_t, 1)

#endif
"""

SPEC_PREAMBLE = """\
# __name__: the spec of __name__.h (docs/envs.md explains every key). Python sizes the buffers,
# validates settings and declares the struct to cffi from it; cffi checks it against the header when
# the environment is compiled.
struct = "__Name__"
log_struct = "__Name__Log"
# The C Log struct's fields in order: perf, score, episode_return, episode_length first and n last.
"""

SPEC_TRAIN = """
# Training defaults for this environment's runs (any key of the run configuration; a run may override).
[train]
"""

SINGLE_ABOUT = """\
 * Observation: 4 floats in [0, 1], agent x, agent y, goal x, goal y over (size - 1).
 * Actions: 0 stay, 1 up, 2 down, 3 left, 4 right; walking into the edge stays put.
 * Reward: +1 on reaching the goal, +0.1 per step closer and -0.1 per step away.
 * perf = shortest path length / steps taken when the goal is reached, 0 on timeout.
"""

SINGLE_BODY = r"""#define __NAME___OBS 4
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
"""

SINGLE_SPEC = """\
log = ["perf", "score", "episode_return", "episode_length", "invalid_actions", "n"]
perf = "shortest path length / steps taken when the goal is reached, 0 on timeout"
solved = 0.9
# agents = 1     # agents per environment: a number, or the name of an int parameter
# players = 2    # a two-player game (`shoal env new NAME --players 2` scaffolds one)

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
"""

SINGLE_TRAIN = """\
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

GAME_ABOUT = """\
 * A two-player game (players = 2 in the spec), one-pile Nim: the seat to move takes 1, 2 or 3 stones and
 * whoever takes the last stone wins, so leaving a multiple of 4 wins. Piles start between stones / 2 and
 * stones.
 * Seats: with opponent = 0 the agent is seat 0 and moves first, and the bot answers inside the same step
 * (one agent per environment); with opponent = 1 both seats read the action buffer (agents 2i and 2i+1),
 * only the seat to move is read, and the first move alternates between games. Self-play and the Elo
 * service play opponent = 1.
 * The bot plays perfectly once the pile is at most bot_sight stones and takes one stone before that: a
 * random player wins 4% of the default games against it and a player who knows the rule all of them.
 * scripted is that bot for the seat to move, so the Elo service's `scripted` anchor and self-play's bot
 * seat play exactly the bot of opponent = 0.
 * Observation per seat: the pile one-hot (__NAME___MAX_PILE + 1 values), then 1 if it is this seat's turn.
 * Actions: 0, 1, 2 take 1, 2, 3 stones; out-of-range actions and taking more than the pile are counted
 * invalid and replaced by the nearest legal move.
 * Reward per seat at the end of a game: +1 win, -1 loss (zero-sum).
 * perf (seat 0's view) = 1 win, 0.5 draw, 0 loss: the win rate against the bot, or seat 0's in self-play.
"""

GAME_BODY = r"""#define __NAME___TAKE 3
#define __NAME___MAX_PILE 31
#define __NAME___OBS (__NAME___MAX_PILE + 2)
/* Frames have a fixed size (Python allocates them from these two macros). */
#define __NAME___RENDER_W 256
#define __NAME___RENDER_H 64

/* Floats only: perf, score, episode_return, episode_length first (SHOAL_LOG_FIELDS), n (episodes) last.
 * wins and draws are seat 0's (SHOAL_LOG_GAME counts them): the Elo service reads a game's result from
 * them. This game has no draws; keep the field for one that does. */
typedef struct {
    SHOAL_LOG_FIELDS
    float wins;
    float draws;
    float invalid_actions;
    float n;
} __Name__Log;

typedef struct {
    /* The buffers Python owns (observation type, action type), the RNG state and the Log. */
    SHOAL_ENV_FIELDS(float, int32_t, __Name__Log)
    /* Parameters: Python writes them before init, checked against the spec's bounds. */
    int opponent; /* 0: the bot plays seat 1; 1: both seats read the action buffer */
    int stones;
    int bot_sight;
    /* State: fixed size, so stepping never allocates. */
    int pile;
    int to_move; /* the seat whose move it is */
    int games;   /* games finished, to alternate the first move */
    int tick;
    float episode_return;
    float invalid_actions;
} __Name__;

/* Agents per environment and observation values per agent: one agent per seat that reads the buffer. */
SHOAL_SIZES(__name__, __Name__, env->opponent ? 2 : 1, __NAME___OBS)

static void __name___observe(__Name__* env) {
    for (int s = 0; s < __name___num_agents(env); s++) {
        float* o = env->observations + s * __NAME___OBS;
        memset(o, 0, sizeof(float) * __NAME___OBS);
        o[env->pile] = 1.0f;
        o[__NAME___MAX_PILE + 1] = (float)(env->to_move == s);
    }
}

static void __name___reset(__Name__* env) {
    int low = env->stones / 2;
    env->pile = low + shoal_randint(&env->rng, env->stones - low + 1);
    env->to_move = env->opponent ? (env->games & 1) : 0;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    __name___observe(env);
}

static void __name___init(__Name__* env) {
    /* C never trusts its inputs: clamp again what Python validated. */
    env->opponent = shoal_clampi(env->opponent, 0, 1);
    env->stones = shoal_clampi(env->stones, 2, __NAME___MAX_PILE);
    env->bot_sight = shoal_clampi(env->bot_sight, 0, __NAME___MAX_PILE);
    env->games = 0;
    __name___reset(env);
}

/* The bot's action for the seat to move: once the pile is within sight, the winning move if there is one
 * (leave a multiple of TAKE + 1); otherwise take one stone. Always legal. */
static int __name___bot(const __Name__* env) {
    int win = env->pile % (__NAME___TAKE + 1);
    return env->pile <= env->bot_sight && win > 0 ? win - 1 : 0;
}

/* The seat to move takes a + 1 stones (a legal action); returns 1 if it took the last one. */
static int __name___take(__Name__* env, int a) {
    env->pile -= a + 1;
    env->to_move = 1 - env->to_move;
    return env->pile == 0;
}

static void __name___step(__Name__* env) {
    /* Only the seat to move plays (with the bot in seat 1, that is always agent 0). Its action is clamped
     * into range and, if it takes more than the pile, replaced by the nearest legal move; both count. */
    int s = env->to_move;
    uint64_t legal = (1ULL << (env->pile < __NAME___TAKE ? env->pile : __NAME___TAKE)) - 1ULL;
    int a = shoal_legal(env->actions[env->opponent ? s : 0], legal, __NAME___TAKE, &env->invalid_actions);
    int winner = __name___take(env, a) ? s : -1;
    if (winner < 0 && !env->opponent) winner = __name___take(env, __name___bot(env)) ? 1 : -1;
    env->tick += 1;
    int done = winner >= 0;
    float r0 = winner == 0 ? 1.0f : (winner == 1 ? -1.0f : 0.0f);
    /* Seat 0 gets r0 and seat 1, when it is an agent, -r0; a game ends for both seats at once. */
    SHOAL_ZERO_SUM_RESULT(env, env->opponent, r0, done, 0);
    env->episode_return += r0;
    if (done) {
        /* Seat 0's result (1 win, 0.5 draw, 0 loss) is perf and counts into wins and draws. */
        SHOAL_LOG_GAME(env->log, winner == 0 ? 1.0f : 0.0f, r0, env->episode_return, (float)env->tick);
        env->log.invalid_actions += env->invalid_actions;
        env->games += 1;
        /* Reset in place: the observation written now is the next game's first. */
        __name___reset(env);
        return;
    }
    __name___observe(env);
}

static void __name___render(__Name__* env, uint8_t* rgb) {
    const int w = __NAME___RENDER_W, h = __NAME___RENDER_H;
    memset(rgb, 30, (size_t)w * h * 3);
    /* A bar in the colour of the seat to move (seat 0 red, seat 1 yellow), then one square per stone. */
    if (env->to_move == 0) shoal_fill_rect(rgb, w, h, 0, 0, w, 6, 220, 60, 60);
    else shoal_fill_rect(rgb, w, h, 0, 0, w, 6, 230, 200, 50);
    for (int i = 0; i < env->pile; i++) shoal_fill_rect(rgb, w, h, 4 + 8 * i, 28, 6, 6, 220, 220, 220);
}

/* Frees what init allocated: nothing here. */
static void __name___close(__Name__* env) { (void)env; }

/* The bot's move for the seat to move; the other seat's row gets 0, which the step never reads. */
static void __name___scripted(__Name__* env, int32_t* out) {
    for (int k = 0; k < __name___num_agents(env); k++) out[k] = k == env->to_move ? __name___bot(env) : 0;
}
"""

GAME_SPEC = """\
log = ["perf", "score", "episode_return", "episode_length", "wins", "draws", "invalid_actions", "n"]
perf = "seat 0's result: 1 win, 0.5 draw, 0 loss (the win rate against the bot, or seat 0's in self-play)"
solved = 0.9
# A two-player game: it needs the int parameter "opponent" in [0, 1] below. Self-play runs, the Elo
# service and its leaderboard find it by this key; every checkpoint of its runs is rated as it is saved.
players = 2

[observation]
shape = [33]       # the pile one-hot (0..31 stones), then 1 on this seat's turn
dtype = "float32"  # float32, uint8 or int8
low = 0.0
high = 1.0

[action]
kind = "discrete"  # discrete (n), multidiscrete (nvec) or continuous (size, low, high)
n = 3

[params.opponent]
type = "int"
default = 0
low = 0
high = 1
doc = "0: the built-in bot plays seat 1; 1: both seats read the action buffer (self-play, Elo matches)"

[params.stones]
type = "int"
default = 21
low = 2
high = 31
doc = "the pile starts with between stones / 2 and stones stones"

[params.bot_sight]
type = "int"
default = 8
low = 0
high = 31
doc = "the bot plays perfectly once the pile is at most this, and takes one stone before"
game = false       # the bot's strength, not the rules: rated matches play the default
"""

GAME_TRAIN = """\
total_timesteps = 200000
num_envs = 64
num_steps = 32
minibatch_size = 1024
learning_rate = 0.005
gamma = 0.99
ent_coef = 0.005

[policy]
hidden_size = 64
"""


@dataclass(frozen=True)
class Template:
    """One scaffold: its summary line and description (header comment), header body and spec."""

    summary: str
    about: str
    body: str
    spec: str
    train: str

    def header(self) -> str:
        opening = HEADER_OPENING.replace("__summary__", self.summary).replace("__about__", self.about)
        return opening + self.body + HEADER_CLOSING

    def spec_file(self) -> str:
        return SPEC_PREAMBLE + self.spec + SPEC_TRAIN + self.train


# By number of players.
TEMPLATES = {
    1: Template("walk to the goal on a grid", SINGLE_ABOUT, SINGLE_BODY, SINGLE_SPEC, SINGLE_TRAIN),
    2: Template(
        "a two-player game, one-pile Nim against a bot", GAME_ABOUT, GAME_BODY, GAME_SPEC, GAME_TRAIN
    ),
}


def camel(name: str) -> str:
    """my_grid -> MyGrid: the struct name."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def render(template: str, name: str) -> str:
    out = template.replace("__NAME__", name.upper()).replace("__Name__", camel(name))
    return out.replace("__name__", name)


def scaffold(name: str, directory: Path, players: int = 1) -> list[Path]:
    """Write NAME.h and NAME.env.toml into `directory` (a two-player game with players=2); refuses to
    overwrite either."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid environment name ({NAME_RE.pattern}: it names C symbols)")
    if players not in TEMPLATES:
        raise ValueError(f"players = {players!r}: 1, or 2 for a two-player game")
    template = TEMPLATES[players]
    files = {
        directory / f"{name}.h": render(template.header(), name),
        directory / f"{name}{SUFFIX}": render(template.spec_file(), name),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise FileExistsError(f"not overwriting {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)
