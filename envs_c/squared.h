/* Squared: walk to the target on an 11x11 grid. The sanity check for a new trainer: a policy that cannot
 * learn this in seconds has a bug.
 *
 * Observation: the grid, one byte per cell (0 empty, 1 agent, 2 target). Actions: 0 stay, 1 up, 2 down,
 * 3 left, 4 right; walking into the edge stays put. Reward: +1 on reaching the target, plus 0.1 per step
 * that brings the agent closer (and -0.1 per step away), so the signal is dense.
 * perf = shortest path length / steps taken when the target is reached, 0 on timeout.
 */
#ifndef SHOAL_SQUARED_H
#define SHOAL_SQUARED_H

#include "env.h"

#define SQUARED_SIZE 11
#define SQUARED_OBS (SQUARED_SIZE * SQUARED_SIZE)
#define SQUARED_ACTIONS 5
#define SQUARED_CELL_PX 16
#define SQUARED_RENDER_W (SQUARED_SIZE * SQUARED_CELL_PX)
#define SQUARED_RENDER_H (SQUARED_SIZE * SQUARED_CELL_PX)

typedef struct {
    SHOAL_LOG_FIELDS
    float reached;
    float invalid_actions;
    float n;
} SquaredLog;

typedef struct {
    SHOAL_ENV_FIELDS(uint8_t, int32_t, SquaredLog)
    int max_steps;
    int ax, ay, tx, ty;
    int tick;
    int start_distance;
    float episode_return;
    float invalid_actions;
} Squared;

SHOAL_SIZES(squared, Squared, 1, SQUARED_OBS)

static inline int squared_distance(const Squared* env) {
    return abs(env->ax - env->tx) + abs(env->ay - env->ty);
}

static void squared_reset(Squared* env) {
    env->ax = shoal_randint(&env->rng, SQUARED_SIZE);
    env->ay = shoal_randint(&env->rng, SQUARED_SIZE);
    do {
        env->tx = shoal_randint(&env->rng, SQUARED_SIZE);
        env->ty = shoal_randint(&env->rng, SQUARED_SIZE);
    } while (env->tx == env->ax && env->ty == env->ay);
    env->tick = 0;
    env->start_distance = squared_distance(env);
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    memset(env->observations, 0, SQUARED_OBS);
    env->observations[env->ay * SQUARED_SIZE + env->ax] = 1;
    env->observations[env->ty * SQUARED_SIZE + env->tx] = 2;
}

static void squared_init(Squared* env) {
    env->max_steps = shoal_clampi(env->max_steps, 1, 100000);
    squared_reset(env);
}

static void squared_step(Squared* env) {
    /* Moves as lookup tables: no branch per action. */
    static const int dx[SQUARED_ACTIONS] = {0, 0, 0, -1, 1};
    static const int dy[SQUARED_ACTIONS] = {0, -1, 1, 0, 0};
    int a = shoal_discrete(env->actions[0], SQUARED_ACTIONS, &env->invalid_actions);
    int before = squared_distance(env);
    env->observations[env->ay * SQUARED_SIZE + env->ax] = 0;
    env->ax = shoal_clampi(env->ax + dx[a], 0, SQUARED_SIZE - 1);
    env->ay = shoal_clampi(env->ay + dy[a], 0, SQUARED_SIZE - 1);
    env->tick += 1;
    int after = squared_distance(env);
    int reached = after == 0;
    float reward = 0.1f * (float)(before - after) + (reached ? 1.0f : 0.0f);
    int timed_out = !reached && env->tick >= env->max_steps;
    SHOAL_STEP_RESULT(env, 0, reward, reached, timed_out);
    env->episode_return += reward;
    if (reached || timed_out) {
        SHOAL_LOG_EPISODE(env->log, reached ? (float)env->start_distance / (float)env->tick : 0.0f, (float)reached,
                          env->episode_return, (float)env->tick);
        env->log.reached += (float)reached;
        env->log.invalid_actions += env->invalid_actions;
        squared_reset(env);
        return;
    }
    env->observations[env->ay * SQUARED_SIZE + env->ax] = 1;
}

static void squared_render(Squared* env, uint8_t* rgb) {
    memset(rgb, 30, (size_t)SQUARED_RENDER_W * SQUARED_RENDER_H * 3);
    const int c = SQUARED_CELL_PX, w = SQUARED_RENDER_W, h = SQUARED_RENDER_H;
    shoal_fill_rect(rgb, w, h, env->tx * c + 1, env->ty * c + 1, c - 2, c - 2, 220, 60, 60);
    shoal_fill_rect(rgb, w, h, env->ax * c + 2, env->ay * c + 2, c - 4, c - 4, 80, 200, 120);
}

static void squared_close(Squared* env) { (void)env; }

/* Close the larger gap first: always a shortest path. */
static void squared_scripted(Squared* env, int32_t* out) {
    int gx = env->tx - env->ax, gy = env->ty - env->ay;
    if (abs(gx) >= abs(gy)) out[0] = gx > 0 ? 4 : (gx < 0 ? 3 : 0);
    else out[0] = gy > 0 ? 2 : 1;
}

SHOAL_VECTOR(squared, Squared, uint8_t, int32_t, 1)

#endif
