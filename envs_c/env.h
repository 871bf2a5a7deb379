/* The contract every shoal environment follows.
 *
 * An environment is a plain struct whose first fields are pointers into buffers that Python owns (numpy
 * arrays, shared zero-copy), followed by its RNG state and its episode Log. The step function reads the
 * action buffer, writes observations, rewards, terminals and truncations, and resets the environment in
 * place when an episode ends, so the vector loop never needs to branch on episode boundaries.
 *
 * The struct opens with SHOAL_ENV_FIELDS(OBS_T, ACT_T, LOG_T), its Log struct with SHOAL_LOG_FIELDS.
 * Each environment header defines, for its struct T and name NAME:
 *   void NAME_init(T*)      set up after buffers, RNG and config are assigned (no allocation later on)
 *   void NAME_reset(T*)     start a new episode and write the first observation
 *   void NAME_step(T*)      advance one step; validate every action it reads
 *   void NAME_render(T*, uint8_t* rgb)   draw an RGB frame of NAME_RENDER_W x NAME_RENDER_H
 *   void NAME_close(T*)     free what init allocated
 *   void NAME_scripted(T*, ACT_T* out)   a heuristic action for every agent of the environment, in the
 *                           layout of its action rows (games write both seats; callers take what they need);
 *                           it must not read the action buffer, since self-play passes that buffer as `out`
 *   NAME_num_agents and NAME_obs_size, through SHOAL_SIZES(NAME, T, AGENTS, OBS_SIZE)
 * The macros below write a step's results (SHOAL_STEP_RESULT) and count a finished episode into the Log
 * (SHOAL_LOG_EPISODE), so every environment does both the same way.
 * and then invokes SHOAL_VECTOR(NAME, T, OBS_T, ACT_T, ACT_SIZE) to get the batched entry points bound by cffi.
 *
 * The Log struct of each environment is floats only, starts with perf, score, episode_return and
 * episode_length, may add the environment's own statistics, and ends with n (episodes counted). The vector
 * layer sums it as a float array, which is why the layout rule matters.
 */
#ifndef SHOAL_ENV_H
#define SHOAL_ENV_H

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* The four fields every Log starts with, in this order: an environment's Log struct opens with them, adds
 * its own statistics and ends with `float n;`. */
#define SHOAL_LOG_FIELDS  \
    float perf;           \
    float score;          \
    float episode_return; \
    float episode_length;

typedef struct {
    SHOAL_LOG_FIELDS
    float n;
} Log;

/* Count one finished episode into an environment's Log: the four fields every Log starts with, and n.
 * A macro, not a function, because each environment has its own Log type; its own fields are the caller's. */
#define SHOAL_LOG_EPISODE(LOG, PERF, SCORE, RETURN, LENGTH) \
    do {                                                    \
        (LOG).perf += (PERF);                               \
        (LOG).score += (SCORE);                             \
        (LOG).episode_return += (RETURN);                   \
        (LOG).episode_length += (LENGTH);                   \
        (LOG).n += 1.0f;                                    \
    } while (0)

/* Count one finished game into a Log that also has `wins` and `draws`: RESULT, seat 0's result (1 win,
 * 0.5 draw, 0 loss), is the game's perf. */
#define SHOAL_LOG_GAME(LOG, RESULT, SCORE, RETURN, LENGTH)      \
    do {                                                        \
        const float result_ = (RESULT);                         \
        SHOAL_LOG_EPISODE(LOG, result_, SCORE, RETURN, LENGTH); \
        (LOG).wins += result_ == 1.0f ? 1.0f : 0.0f;            \
        (LOG).draws += result_ == 0.5f ? 1.0f : 0.0f;           \
    } while (0)

/* The fields every environment struct starts with, in this order (SHOAL_VECTOR and the declarations that
 * build.py generates from the spec rely on it): the five buffers Python owns, the RNG state and the Log. */
#define SHOAL_ENV_FIELDS(OBS_T, ACT_T, LOG_T) \
    OBS_T* observations;                     \
    ACT_T* actions;                          \
    float* rewards;                          \
    uint8_t* terminals;                      \
    uint8_t* truncations;                    \
    uint64_t rng;                            \
    LOG_T log;

/* NAME_num_agents and NAME_obs_size, which SHOAL_VECTOR calls: AGENTS (agents per environment) and OBS_SIZE
 * (observation values per agent) are expressions that may read `env`, a const T*. */
#define SHOAL_SIZES(NAME, T, AGENTS, OBS_SIZE)          \
    static inline int NAME##_num_agents(const T* env) { \
        (void)env;                                      \
        return (AGENTS);                                \
    }                                                   \
    static inline int NAME##_obs_size(const T* env) {   \
        (void)env;                                      \
        return (OBS_SIZE);                              \
    }

/* Agent I's result of a step, written into the buffers Python reads: its reward, whether its episode ended
 * (TERMINAL) and whether it was cut off (TRUNCATED). */
#define SHOAL_STEP_RESULT(ENV, I, REWARD, TERMINAL, TRUNCATED) \
    do {                                                       \
        (ENV)->rewards[I] = (REWARD);                          \
        (ENV)->terminals[I] = (uint8_t)(TERMINAL);             \
        (ENV)->truncations[I] = (uint8_t)(TRUNCATED);          \
    } while (0)

/* A step of a two-player zero-sum game: seat 0 gets R0 and seat 1, when it is an agent too (SEAT1_PLAYS, as
 * in self-play), -R0; both seats share the terminal and truncation flags. */
#define SHOAL_ZERO_SUM_RESULT(ENV, SEAT1_PLAYS, R0, TERMINAL, TRUNCATED)         \
    do {                                                                         \
        SHOAL_STEP_RESULT(ENV, 0, R0, TERMINAL, TRUNCATED);                      \
        if (SEAT1_PLAYS) SHOAL_STEP_RESULT(ENV, 1, -(R0), TERMINAL, TRUNCATED); \
    } while (0)

/* splitmix64: a full-period generator with good mixing, cheap enough for the step path. */
static inline uint64_t shoal_next(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline float shoal_uniform(uint64_t* state) {
    return (float)(shoal_next(state) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n); n must be positive. */
static inline int shoal_randint(uint64_t* state, int n) {
    return (int)((shoal_next(state) >> 33) % (uint64_t)n);
}

static inline float shoal_clampf(float x, float lo, float hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int shoal_clampi(int x, int lo, int hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A discrete action from an untrusted buffer: out-of-range values are clamped and counted. */
static inline int shoal_discrete(int32_t raw, int n, float* invalid) {
    if (raw < 0 || raw >= n) {
        *invalid += 1.0f;
        return raw < 0 ? 0 : n - 1;
    }
    return raw;
}

/* A continuous action from an untrusted buffer: NaN becomes 0, infinities and overshoot are clamped. */
static inline float shoal_continuous(float raw, float lo, float hi, float* invalid) {
    if (isnan(raw)) {
        *invalid += 1.0f;
        return 0.0f;
    }
    if (raw < lo || raw > hi) {
        *invalid += 1.0f;
        return shoal_clampf(raw, lo, hi);
    }
    return raw;
}

/* A discrete action that must also be legal (a board move, say): out-of-range values are counted as
 * invalid and then replaced by the legal move nearest to them in index order, so a stale checkpoint keeps
 * playing instead of crashing or stalling the game. legal(i) is a bitmask of n <= 64 moves, never zero. */
static inline int shoal_legal(int32_t raw, uint64_t legal, int n, float* invalid) {
    int a = shoal_discrete(raw, n, invalid);
    if ((legal >> a) & 1ULL) return a;
    if (raw >= 0 && raw < n) *invalid += 1.0f;
    for (int d = 1; d < n; d++) {
        if (a - d >= 0 && ((legal >> (a - d)) & 1ULL)) return a - d;
        if (a + d < n && ((legal >> (a + d)) & 1ULL)) return a + d;
    }
    return a;
}

/* Fill the w x h pixels at (x0, y0) of an RGB frame `width` pixels wide and `height` high with one colour,
 * clipped to the frame. */
static inline void shoal_fill_rect(uint8_t* rgb, int width, int height, int x0, int y0, int w, int h, uint8_t r,
                                   uint8_t g, uint8_t b) {
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < height; y++) {
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < width; x++) {
            uint8_t* p = rgb + ((size_t)y * (size_t)width + (size_t)x) * 3;
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
    }
}

/* Per-environment seeding: environment i of a batch seeded with s always replays the same trajectory. */
static inline uint64_t shoal_seed(uint64_t seed, int index) {
    uint64_t state = seed * 0x2545F4914F6CDD1DULL + (uint64_t)index;
    return shoal_next(&state);
}

/* A scattered subset of a batch, for the thread pool: the pool hands a shard function contiguous ranges of
 * [0, n), and NAME_vec_scripted_some reads those as positions in `index` (environments of `envs`), writing
 * the k-th listed environment's rows at row k of `out`. Python checks every index before the call. */
typedef struct {
    void* envs;
    const int32_t* index;
    void* out;
} ShoalSubset;

/* Self-play's step of a two-player game, per environment, on the thread pool: the learner holds one seat and
 * the league's members (networks, or the scripted bot) the other, and the trainer sees the learner's rows
 * only. One pass per environment writes both seats' actions (the bot's moves computed just before, from the
 * state the step will read), steps, reads the learner's results and both seats' observations, and swaps
 * seats when a game ends, so the next game is seen from the other seat. Rows of `actions`, `observations`,
 * `rewards`, `terminals`, `truncations` and `their_*` are seat_agents per environment, in environment order.
 * Python builds the job and checks seat_rows against the environment before the first call. */
typedef struct {
    void* envs;
    int seat_agents;
    const int32_t* seat_rows; /* [2][seat_agents]: each seat's agents, as rows of their environment */
    size_t obs_bytes;         /* one agent's row */
    size_t act_bytes;
    uint8_t* seat;            /* per environment, the learner's seat; swapped when its game ends */
    const uint8_t* bot;       /* per environment, 1 where the scripted bot plays the other seat */
    const char* actions;      /* the learner's */
    const char* their_actions;
    char* observations;
    float* rewards;
    uint8_t* terminals;
    uint8_t* truncations;
    char* their_observations;
    double* returns;          /* per environment, the learner's return so far (its agents' mean) */
    uint8_t* ended;           /* per environment, 1 where the step ended the game */
    int step;                 /* 0: read the rows only (after a reset) */
} ShoalSeats;

/* Environment i's action rows from the learner's and, unless the bot plays them, the other seat's rows. */
static inline void shoal_seats_put(const ShoalSeats* s, int i, char* actions) {
    const int n = s->seat_agents, me = s->seat[i] & 1;
    for (int k = 0; k < n; k++) {
        const size_t row = ((size_t)i * (size_t)n + (size_t)k) * s->act_bytes;
        memcpy(actions + (size_t)s->seat_rows[me * n + k] * s->act_bytes, s->actions + row, s->act_bytes);
        if (!s->bot[i]) {
            memcpy(actions + (size_t)s->seat_rows[(1 - me) * n + k] * s->act_bytes, s->their_actions + row,
                   s->act_bytes);
        }
    }
}

/* Environment i's learner results, then its observations from the seats as they stand after a swap. */
static inline void shoal_seats_take(const ShoalSeats* s, int i, const char* obs, const float* rewards,
                                    const uint8_t* terminals, const uint8_t* truncations) {
    const int n = s->seat_agents;
    int me = s->seat[i] & 1;
    double total = 0.0;
    for (int k = 0; k < n; k++) {
        const size_t row = (size_t)i * (size_t)n + (size_t)k;
        const int32_t a = s->seat_rows[me * n + k];
        s->rewards[row] = rewards[a];
        s->terminals[row] = terminals[a];
        s->truncations[row] = truncations[a];
        total += rewards[a];
    }
    /* Every agent of a game ends with it: the learner's first row tells. */
    const int32_t first = s->seat_rows[me * n];
    const uint8_t over = s->step && (terminals[first] || truncations[first]);
    if (s->step) s->returns[i] += total / n;
    s->ended[i] = over;
    if (over) {
        me = 1 - me;
        s->seat[i] = (uint8_t)me;
    }
    for (int k = 0; k < n; k++) {
        const size_t row = ((size_t)i * (size_t)n + (size_t)k) * s->obs_bytes;
        memcpy(s->observations + row, obs + (size_t)s->seat_rows[me * n + k] * s->obs_bytes, s->obs_bytes);
        memcpy(s->their_observations + row, obs + (size_t)s->seat_rows[(1 - me) * n + k] * s->obs_bytes,
               s->obs_bytes);
    }
}

/* Batched entry points. Every environment struct starts with the fields these loops touch, SHOAL_ENV_FIELDS.
 * NAME_num_agents(T*) and NAME_obs_size(T*) report what the environment will write, so vec_init can refuse
 * buffers that Python sized differently instead of writing past them; vec_sizes reports them before init,
 * so the refusal can say which size the spec file got wrong.
 */
#define SHOAL_VECTOR(NAME, T, OBS_T, ACT_T, ACT_SIZE)                                                    \
    void NAME##_vec_sizes(T* e, int* out) {                                                             \
        out[0] = NAME##_num_agents(e);                                                                  \
        out[1] = NAME##_obs_size(e);                                                                    \
        out[2] = (ACT_SIZE);                                                                            \
        out[3] = (int)sizeof(OBS_T);                                                                    \
        out[4] = (int)sizeof(ACT_T);                                                                    \
    }                                                                                                   \
    int NAME##_vec_init(T* envs, int num_envs, int agents_per_env, int obs_size, int act_size,          \
                        void* obs, void* actions, float* rewards, uint8_t* terminals,                   \
                        uint8_t* truncations, uint64_t seed) {                                          \
        for (int i = 0; i < num_envs; i++) {                                                            \
            T* e = &envs[i];                                                                            \
            if (NAME##_num_agents(e) != agents_per_env || NAME##_obs_size(e) != obs_size ||             \
                (ACT_SIZE) != act_size) {                                                               \
                return -1;                                                                              \
            }                                                                                           \
            size_t row = (size_t)i * (size_t)agents_per_env;                                            \
            e->observations = (OBS_T*)obs + row * (size_t)obs_size;                                     \
            e->actions = (ACT_T*)actions + row * (size_t)act_size;                                      \
            e->rewards = rewards + row;                                                                 \
            e->terminals = terminals + row;                                                             \
            e->truncations = truncations + row;                                                         \
            e->rng = shoal_seed(seed, i);                                                               \
            memset(&e->log, 0, sizeof(e->log));                                                         \
            NAME##_init(e);                                                                             \
        }                                                                                               \
        return 0;                                                                                       \
    }                                                                                                   \
    void NAME##_vec_reset(T* envs, int num_envs, uint64_t seed) {                                       \
        for (int i = 0; i < num_envs; i++) {                                                            \
            envs[i].rng = shoal_seed(seed, i);                                                          \
            NAME##_reset(&envs[i]);                                                                     \
        }                                                                                               \
    }                                                                                                   \
    void NAME##_vec_step(T* envs, int start, int end) {                                                 \
        for (int i = start; i < end; i++) {                                                             \
            NAME##_step(&envs[i]);                                                                      \
        }                                                                                               \
    }                                                                                                   \
    /* The same loop with an untyped batch, so one thread pool can drive every environment. */          \
    void NAME##_vec_step_any(void* envs, int start, int end) { NAME##_vec_step((T*)envs, start, end); }  \
    void NAME##_vec_scripted(T* envs, int num_envs, void* out) {                                        \
        ACT_T* rows = (ACT_T*)out;                                                                      \
        for (int i = 0; i < num_envs; i++) {                                                            \
            NAME##_scripted(&envs[i], rows);                                                            \
            rows += (size_t)NAME##_num_agents(&envs[i]) * (ACT_SIZE);                                   \
        }                                                                                               \
    }                                                                                                   \
    void NAME##_vec_scripted_some(void* job, int start, int end) {                                      \
        const ShoalSubset* subset = (const ShoalSubset*)job;                                            \
        T* envs = (T*)subset->envs;                                                                     \
        for (int k = start; k < end; k++) {                                                             \
            T* e = &envs[subset->index[k]];                                                             \
            size_t row = (size_t)k * (size_t)NAME##_num_agents(e) * (ACT_SIZE);                         \
            NAME##_scripted(e, (ACT_T*)subset->out + row);                                              \
        }                                                                                               \
    }                                                                                                   \
    /* Self-play's step over a shard of the batch (ShoalSeats): the bot's moves go into the environment's\
     * own action rows first, the seats' rows over them. */                                             \
    void NAME##_vec_seats(void* job, int start, int end) {                                              \
        const ShoalSeats* s = (const ShoalSeats*)job;                                                   \
        T* envs = (T*)s->envs;                                                                          \
        for (int i = start; i < end; i++) {                                                             \
            T* e = &envs[i];                                                                            \
            if (s->step) {                                                                              \
                if (s->bot[i]) NAME##_scripted(e, e->actions);                                          \
                shoal_seats_put(s, i, (char*)e->actions);                                               \
                NAME##_step(e);                                                                         \
            }                                                                                           \
            shoal_seats_take(s, i, (const char*)e->observations, e->rewards, e->terminals,              \
                             e->truncations);                                                           \
        }                                                                                               \
    }                                                                                                   \
    /* Each listed environment's Log as one row of `out`, cleared as vec_log clears it. */             \
    void NAME##_vec_log_some(T* envs, const int32_t* index, int n, float* out) {                        \
        for (int k = 0; k < n; k++) {                                                                   \
            memcpy(out + (size_t)k * (sizeof(envs[0].log) / sizeof(float)), &envs[index[k]].log,       \
                   sizeof(envs[0].log));                                                                \
            memset(&envs[index[k]].log, 0, sizeof(envs[0].log));                                        \
        }                                                                                               \
    }                                                                                                   \
    void NAME##_vec_log(T* envs, int num_envs, float* out) {                                            \
        const int width = (int)(sizeof(envs[0].log) / sizeof(float));                                   \
        memset(out, 0, sizeof(envs[0].log));                                                            \
        for (int i = 0; i < num_envs; i++) {                                                            \
            const float* fields = (const float*)&envs[i].log;                                           \
            for (int k = 0; k < width; k++) out[k] += fields[k];                                        \
            memset(&envs[i].log, 0, sizeof(envs[i].log));                                              \
        }                                                                                               \
    }                                                                                                   \
    void NAME##_vec_close(T* envs, int num_envs) {                                                      \
        for (int i = 0; i < num_envs; i++) NAME##_close(&envs[i]);                                      \
    }

#endif
