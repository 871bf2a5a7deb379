/* A small persistent thread pool that steps contiguous shards of one batch of environments.
 *
 * Python makes one call per step (cffi releases the GIL around it); the calling thread steps shard 0 and
 * the workers step the rest. A Python ThreadPoolExecutor costs tens of microseconds per step in futures,
 * locks and GIL hand-offs, which is as long as stepping 4096 cheap environments; here a step costs one
 * atomic increment to publish and one counter to wait on.
 *
 * Workers spin briefly on the generation counter (back-to-back steps arrive within microseconds) and then
 * sleep on a condition variable, so an idle pool does not burn the cores that the trainer needs.
 */
#ifndef SHOAL_POOL_H
#define SHOAL_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHOAL_MAX_THREADS 64
/* Roughly 50-200 us of polling before a worker sleeps: longer than the gap between back-to-back steps. */
#define SHOAL_SPIN 4000

typedef void (*shoal_shard_fn)(void* envs, int start, int end);

typedef struct ShoalPool ShoalPool;

/* Each thread owns a contiguous range of the batch and claims chunks of it from the front; a thread that
 * finishes its own range steals chunks from the others'. Owning a fixed range keeps each environment's
 * state in the same core's cache from step to step (handing chunks out first-come would bounce it between
 * cores); stealing matters on shared machines, where a descheduled thread would otherwise hold everyone up
 * for a whole time slice. Each range is one atomic word holding the job's generation and the range's
 * unclaimed [start, end), so a claim is one compare-and-swap that also rejects a stale job, and nothing a
 * claim depends on is read outside that word (a late worker never sees half of the next job's setup).
 * Ranges count units of ceil(num_envs / 2^20) environments, so start and end fit 20 bits each; the 24-bit
 * generation would only be confused after a worker stalls mid-claim across 16M steps. */
typedef struct {
    _Alignas(64) atomic_uint_fast64_t word; /* generation << 40 | start << 20 | end, in units of envs */
} ShoalRange;

#define SHOAL_UNIT_BITS 20
#define SHOAL_UNIT_MASK ((1ULL << SHOAL_UNIT_BITS) - 1)
#define SHOAL_GEN_MASK ((1ULL << 24) - 1)

static inline uint64_t shoal_word(uint64_t gen, uint64_t start, uint64_t end) {
    return (gen << 40) | (start << SHOAL_UNIT_BITS) | end;
}

typedef struct {
    ShoalPool* pool;
    int index; /* 1..num_threads-1; the calling thread is 0 */
} ShoalWorker;

struct ShoalPool {
    int num_threads;
    pthread_t threads[SHOAL_MAX_THREADS];
    ShoalWorker workers[SHOAL_MAX_THREADS];
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int sleepers; /* guarded by mutex */
    _Alignas(64) atomic_uint_fast64_t generation;
    _Alignas(64) atomic_int done;
    atomic_int stop;
    /* The job, written by the caller before it publishes a new generation (release). */
    shoal_shard_fn fn;
    void* envs;
    int num_envs;
    int unit; /* environments per range unit */
    /* Optional action rows to copy in before stepping, chunk by chunk on the thread that steps the chunk:
     * the copy is parallel too, and the rows land in the cache of the core that reads them. */
    char* dst;
    const char* src;
    size_t row_bytes;
    ShoalRange ranges[SHOAL_MAX_THREADS];
};

static inline void shoal_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claim and step chunks of job `gen`: own range first, then the others'. A claim takes half of what is
 * left in a range (all of it when little is left): few claims, yet a descheduled thread holds little. */
static void shoal_pool_drain(ShoalPool* p, uint64_t gen, int self) {
    for (int k = 0; k < p->num_threads; k++) {
        ShoalRange* r = &p->ranges[(self + k) % p->num_threads];
        uint64_t cur = atomic_load_explicit(&r->word, memory_order_acquire);
        for (;;) {
            if ((cur >> 40) != gen) break;
            uint64_t start = (cur >> SHOAL_UNIT_BITS) & SHOAL_UNIT_MASK, end = cur & SHOAL_UNIT_MASK;
            if (start >= end) break;
            uint64_t left = end - start, take = left <= 8 ? left : left / 2;
            if (!atomic_compare_exchange_weak_explicit(&r->word, &cur, shoal_word(gen, start + take, end),
                                                       memory_order_acq_rel, memory_order_acquire)) {
                continue; /* cur now holds the fresh value */
            }
            /* The claim succeeded with this job's tag, so the job's fields below are this job's. */
            int a = (int)(start * (uint64_t)p->unit);
            int b = (int)((start + take) * (uint64_t)p->unit);
            if (b > p->num_envs) b = p->num_envs;
            if (p->src) memmove(p->dst + (size_t)a * p->row_bytes, p->src + (size_t)a * p->row_bytes,
                                (size_t)(b - a) * p->row_bytes);
            p->fn(p->envs, a, b);
            atomic_fetch_add_explicit(&p->done, b - a, memory_order_acq_rel);
            cur = atomic_load_explicit(&r->word, memory_order_acquire);
        }
    }
}

static void* shoal_worker_main(void* arg) {
    ShoalWorker* w = (ShoalWorker*)arg;
    ShoalPool* p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < SHOAL_SPIN; spin++) {
            shoal_cpu_relax();
            gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->mutex);
            p->sleepers++;
            while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
                   !atomic_load(&p->stop)) {
                pthread_cond_wait(&p->wake, &p->mutex);
            }
            p->sleepers--;
            pthread_mutex_unlock(&p->mutex);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = gen;
        shoal_pool_drain(p, gen, w->index);
    }
}

static void shoal_pool_free(ShoalPool* p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 1; i < p->num_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mutex);
    free(p);
}

/* NULL when threads cannot be started; num_threads counts the caller. */
static ShoalPool* shoal_pool_new(int num_threads) {
    if (num_threads < 1 || num_threads > SHOAL_MAX_THREADS) return NULL;
    ShoalPool* p = (ShoalPool*)aligned_alloc(64, (sizeof(ShoalPool) + 63) / 64 * 64);
    if (p == NULL) return NULL;
    memset(p, 0, sizeof(ShoalPool));
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->stop, 0);
    for (int i = 0; i < SHOAL_MAX_THREADS; i++) atomic_init(&p->ranges[i].word, 0);
    p->num_threads = 1;
    for (int i = 1; i < num_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        if (pthread_create(&p->threads[i], NULL, shoal_worker_main, &p->workers[i]) != 0) {
            shoal_pool_free(p);
            return NULL;
        }
        p->num_threads = i + 1;
    }
    return p;
}

/* Step envs[0:num_envs) on every thread of the pool (p may be NULL: the caller's thread alone), first
 * copying row_bytes of actions per environment from src to dst when src is not NULL. Returns when all of
 * it is done. */
static void shoal_pool_step(ShoalPool* p, shoal_shard_fn fn, void* envs, int num_envs, void* dst,
                            const void* src, size_t row_bytes) {
    if (p == NULL || p->num_threads == 1 || num_envs < 2) {
        if (src) memmove(dst, src, (size_t)num_envs * row_bytes); /* memmove: src may alias dst */
        fn(envs, 0, num_envs);
        return;
    }
    const int n = p->num_threads;
    p->dst = (char*)dst;
    p->src = (const char*)src;
    p->row_bytes = row_bytes;
    uint64_t gen = (atomic_load_explicit(&p->generation, memory_order_relaxed) + 1) & SHOAL_GEN_MASK;
    if (gen == 0) gen = 1; /* workers start having seen generation 0 */
    p->fn = fn;
    p->envs = envs;
    p->num_envs = num_envs;
    p->unit = (int)(((uint64_t)num_envs + SHOAL_UNIT_MASK) >> SHOAL_UNIT_BITS);
    uint64_t units = ((uint64_t)num_envs + (uint64_t)p->unit - 1) / (uint64_t)p->unit;
    for (int t = 0; t < n; t++) {
        uint64_t a = units * (uint64_t)t / (uint64_t)n, b = units * (uint64_t)(t + 1) / (uint64_t)n;
        atomic_store_explicit(&p->ranges[t].word, shoal_word(gen, a, b), memory_order_release);
    }
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    pthread_mutex_lock(&p->mutex);
    if (p->sleepers > 0) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    shoal_pool_drain(p, gen, 0);
    /* Only chunks already claimed by workers remain: spin briefly, then give the core away. */
    for (int spin = 0; atomic_load_explicit(&p->done, memory_order_acquire) < num_envs; spin++) {
        if (spin < SHOAL_SPIN) shoal_cpu_relax();
        else sched_yield();
    }
}

/* Step without copying actions (they are already in the buffer). */
static inline void shoal_pool_run(ShoalPool* p, shoal_shard_fn fn, void* envs, int num_envs) {
    shoal_pool_step(p, fn, envs, num_envs, NULL, NULL, 0);
}

#endif
