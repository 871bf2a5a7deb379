/* The per-environment driver loop, instantiated once per environment by the generated table.
 *
 * bench mode: the same measurement as bench/env_sps.py does from Python (a cache of 1024 pre-generated
 *   random action rows, one memcpy into the action buffer per step, then NAME_vec_step), without Python.
 * asan mode: valid, out-of-range, negative, extreme and (continuous) NaN/inf actions, plus the scripted
 *   policy, log, render and reset entry points, for a fixed number of steps under the sanitizers.
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
            for (long s = 0; s < a->steps; s++) {                                                         \
                if (s % 7 == 3) {                                                                         \
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
