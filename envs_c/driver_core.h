/* The per-environment driver loop, instantiated once per environment by the generated table.
 *
 * bench mode: the same measurement as bench/env_sps.py does from Python (a cache of 1024 pre-generated
 *   random action rows, one memcpy into the action buffer per step, then NAME_vec_step), without Python.
 * asan mode: valid, out-of-range, negative, extreme and (continuous) NaN/inf actions, plus the scripted
 *   policy, self-play's seated step, log, render and reset entry points, for a fixed number of steps under
 *   the sanitizers.
 */
#ifndef SHOAL_ENV_DRIVER_CORE_H
#define SHOAL_ENV_DRIVER_CORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

#define DRIVER_CACHE 1024

typedef struct {
    int num_envs;
    long steps;      /* asan mode: steps to run */
    double seconds;  /* bench mode: seconds per timed run */
    int runs;
    int asan;
    int threads;     /* bench mode: step through the envs_c/pool.h thread pool when > 1 */
    uint64_t seed;
    int nset;
    char** keys;
    double* vals;
} DriverArgs;

typedef struct {
    int agents;
    double sps[16];
    int runs;
    long steps;
} DriverResult;

typedef int (*driver_fn)(const DriverArgs*, DriverResult*);

typedef struct {
    const char* name;
    driver_fn run;
} DriverEntry;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill_discrete(int32_t* out, size_t n, int high, int asan, uint64_t* rng) {
    static const int32_t extremes[] = {-1, -2, INT32_MIN, INT32_MAX, 1 << 20, -(1 << 20)};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = shoal_next(rng);
        if (asan && (r & 3) == 0) {
            int k = (int)((r >> 8) % 8);
            out[i] = k < 6 ? extremes[k] : high + (int32_t)((r >> 16) % 5);
        } else {
            out[i] = (int32_t)((r >> 33) % (uint64_t)high);
        }
    }
}

static void fill_continuous(float* out, size_t n, int asan, uint64_t* rng) {
    const float extremes[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 2.0f, -5.0f, -0.0f};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = shoal_next(rng);
        if (asan && (r & 3) == 0) out[i] = extremes[(r >> 8) % 8];
        else out[i] = (float)(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
}

/* Buffers for self-play's seated step (asan mode) over n environments of `agents` agents: the first half of
 * each environment's agents as seat 0, the second as seat 1 (the games' layout; for other environments
 * with an even count it is just rows to copy). NULL seat_rows when the count is odd: no seated steps. */
typedef struct {
    ShoalSeats job;
    int32_t* seat_rows;
} DriverSeats;

static void driver_seats_init(DriverSeats* d, void* envs, int n, int agents, size_t obs_bytes,
                              size_t act_bytes) {
    memset(d, 0, sizeof(*d));
    if (agents % 2 != 0) return;
    const int half = agents / 2;
    const size_t rows = (size_t)n * (size_t)half;
    d->seat_rows = (int32_t*)malloc((size_t)agents * sizeof(int32_t));
    for (int k = 0; k < agents; k++) d->seat_rows[k] = k;
    ShoalSeats* s = &d->job;
    s->envs = envs;
    s->seat_agents = half;
    s->seat_rows = d->seat_rows;
    s->obs_bytes = obs_bytes;
    s->act_bytes = act_bytes;
    s->seat = (uint8_t*)calloc((size_t)n, 1);
    s->bot = (uint8_t*)calloc((size_t)n, 1);
    s->actions = (const char*)calloc(rows, act_bytes);
    s->their_actions = (const char*)calloc(rows, act_bytes);
    s->observations = (char*)calloc(rows, obs_bytes);
    s->their_observations = (char*)calloc(rows, obs_bytes);
    s->rewards = (float*)calloc(rows, sizeof(float));
    s->terminals = (uint8_t*)calloc(rows, 1);
    s->truncations = (uint8_t*)calloc(rows, 1);
    s->returns = (double*)calloc((size_t)n, sizeof(double));
    s->ended = (uint8_t*)calloc((size_t)n, 1);
}

/* One seated step with hostile actions from `src` (both seats' rows), random seats (any byte: the step
 * reads only its low bit) and random bot flags. */
static void driver_seats_step(DriverSeats* d, ShoalPool* pool, shoal_shard_fn fn, int n, const void* src,
                              uint64_t* rng) {
    ShoalSeats* s = &d->job;
    const size_t half_bytes = (size_t)n * (size_t)s->seat_agents * s->act_bytes;
    memcpy((char*)s->actions, src, half_bytes);
    memcpy((char*)s->their_actions, (const char*)src + half_bytes, half_bytes);
    for (int i = 0; i < n; i++) {
        const uint64_t r = shoal_next(rng);
        if ((r & 15) == 0) s->seat[i] = (uint8_t)(r >> 8);
        ((uint8_t*)s->bot)[i] = (uint8_t)((r >> 16) & 1);
    }
    s->step = 1;
    shoal_pool_run(pool, fn, s, n);
}

static void driver_seats_free(DriverSeats* d) {
    if (d->seat_rows == NULL) return;
    ShoalSeats* s = &d->job;
    free(d->seat_rows);
    free(s->seat); free((void*)s->bot); free((void*)s->actions); free((void*)s->their_actions);
    free(s->observations); free(s->their_observations); free(s->rewards); free(s->terminals);
    free(s->truncations); free(s->returns); free(s->ended);
}

/* Copy one cached action array into the buffer and step: the same C call VecEnv.step makes (pool is NULL
 * for one thread, and then it is a memcpy and NAME_vec_step). */
#define DRIVE_STEP(NAME, SRC)                                                                             \
    shoal_pool_step(pool, NAME##_vec_step_any, envs, n, act, (SRC), row_bytes)

#define SHOAL_DRIVE(NAME, T, OBS_T, ACT_T, ACT_W, CONTINUOUS, HIGH, RW, RH)                               \
    static int drive_##NAME(const DriverArgs* a, DriverResult* res) {                                     \
        int n = a->num_envs, status = 0;                                                                  \
        T* envs = (T*)calloc((size_t)n, sizeof(T));                                                       \
        for (int i = 0; i < n; i++) {                                                                     \
            if (setup_##NAME(&envs[i], a->nset, a->keys, a->vals)) return -1;                             \
        }                                                                                                 \
        int agents = NAME##_num_agents(&envs[0]), obs_size = NAME##_obs_size(&envs[0]);                   \
        size_t rows = (size_t)n * (size_t)agents, act_n = rows * (ACT_W);                                 \
        size_t row_bytes = act_n / (size_t)n * sizeof(ACT_T); /* action bytes per environment */          \
        OBS_T* obs = (OBS_T*)calloc(rows * (size_t)obs_size, sizeof(OBS_T));                              \
        ACT_T* act = (ACT_T*)calloc(act_n, sizeof(ACT_T));                                                \
        float* rew = (float*)calloc(rows, sizeof(float));                                                 \
        uint8_t* term = (uint8_t*)calloc(rows, 1);                                                        \
        uint8_t* trunc = (uint8_t*)calloc(rows, 1);                                                       \
        float logbuf[64];                                                                                 \
        uint8_t* frame = (uint8_t*)malloc((size_t)(RW) * (RH) * 3);                                       \
        int cache = a->asan ? 64 : DRIVER_CACHE;                                                          \
        ACT_T* acts = (ACT_T*)malloc((size_t)cache * act_n * sizeof(ACT_T));                              \
        uint64_t rng = a->seed ^ 0xD1B54A32D192ED03ULL;                                                   \
        for (int c = 0; c < cache; c++) {                                                                 \
            if (CONTINUOUS) fill_continuous((float*)(void*)(acts + c * act_n), act_n, a->asan, &rng);     \
            else fill_discrete((int32_t*)(void*)(acts + c * act_n), act_n, (HIGH), a->asan, &rng);        \
        }                                                                                                 \
        if (NAME##_vec_init(envs, n, agents, obs_size, (ACT_W), obs, act, rew, term, trunc, a->seed)) {   \
            fprintf(stderr, #NAME ": vec_init refused the buffers\n");                                    \
            return -1;                                                                                    \
        }                                                                                                 \
        res->agents = (int)rows;                                                                          \
        ShoalPool* pool = a->threads > 1 ? shoal_pool_new(a->threads) : NULL;                             \
        if (a->asan) {                                                                                    \
            DriverSeats seats;                                                                            \
            driver_seats_init(&seats, envs, n, agents, (size_t)obs_size * sizeof(OBS_T),                  \
                              (size_t)(ACT_W) * sizeof(ACT_T));                                           \
            for (long s = 0; s < a->steps; s++) {                                                         \
                if (seats.seat_rows != NULL && s % 5 == 1) {                                              \
                    driver_seats_step(&seats, pool, NAME##_vec_seats, n, acts + (s % cache) * act_n,      \
                                      &rng);                                                              \
                } else if (s % 7 == 3) {                                                                  \
                    NAME##_vec_scripted(envs, n, act);                                                    \
                    DRIVE_STEP(NAME, NULL);                                                               \
                } else {                                                                                  \
                    DRIVE_STEP(NAME, acts + (s % cache) * act_n);                                         \
                }                                                                                         \
                if (s % 997 == 0) {                                                                       \
                    NAME##_vec_log(envs, n, logbuf);                                                      \
                    NAME##_render(&envs[s % n], frame);                                                   \
                }                                                                                         \
                if (s == a->steps / 2) NAME##_vec_reset(envs, n, a->seed + 1);                            \
            }                                                                                             \
            driver_seats_free(&seats);                                                                    \
            res->steps = a->steps;                                                                        \
            res->runs = 0;                                                                                \
        } else {                                                                                          \
            long k = 0;                                                                                   \
            for (; k < 200; k++) {                                                                        \
                DRIVE_STEP(NAME, acts + (k % cache) * act_n);                                             \
            }                                                                                             \
            double t0 = now_s();                                                                          \
            long calib = 0;                                                                               \
            while (now_s() - t0 < 0.5) {                                                                  \
                DRIVE_STEP(NAME, acts + (calib % cache) * act_n);                                         \
                calib++;                                                                                  \
            }                                                                                             \
            double per = (now_s() - t0) / (double)calib;                                                  \
            long steps = (long)(a->seconds / per * 1.1) + 1;                                              \
            res->runs = a->runs < 16 ? a->runs : 16;                                                      \
            for (int r = 0; r < res->runs; r++) {                                                         \
                double t = now_s();                                                                       \
                for (long s = 0; s < steps; s++) {                                                        \
                    DRIVE_STEP(NAME, acts + (s % cache) * act_n);                                         \
                }                                                                                         \
                res->sps[r] = (double)rows * (double)steps / (now_s() - t);                               \
            }                                                                                             \
            res->steps = steps;                                                                           \
        }                                                                                                 \
        shoal_pool_free(pool);                                                                            \
        NAME##_vec_close(envs, n);                                                                        \
        free(envs); free(obs); free(act); free(rew); free(term); free(trunc); free(frame); free(acts);    \
        return status;                                                                                    \
    }

#endif
