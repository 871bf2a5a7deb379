/* Navigate: steer a point mass with continuous thrust to a target in a walled square (continuous actions).
 *
 * The arena is [-1, 1]^2. The action is an acceleration (ax, ay), each in [-1, 1]; velocity decays by drag
 * and is capped at VMAX per axis; walls stop the mass. The episode ends when the mass comes within 0.1 of
 * the target (terminal) or after max_steps (truncation).
 * Observation (all in [-1, 1]): position x, y; velocity x, y / VMAX; target x, y; (target - position) / 2.
 * Reward: progress toward the target each step (distance before - distance after) and +1 on arrival.
 * perf = 1 - 0.5 * steps / max_steps on arrival (0.5..1: faster is better), 0 when time runs out.
 * NaN actions count as invalid and act as 0; out-of-range ones are clamped and counted.
 */
#ifndef SHOAL_NAVIGATE_H
#define SHOAL_NAVIGATE_H

#include "env.h"

#define NAVIGATE_OBS 8
#define NAVIGATE_ACT 2
#define NAVIGATE_RENDER_W 160
#define NAVIGATE_RENDER_H 160

static const float NAVIGATE_DT = 0.05f;
static const float NAVIGATE_ACCEL = 4.0f;
static const float NAVIGATE_DRAG = 0.95f;
static const float NAVIGATE_VMAX = 1.5f;
static const float NAVIGATE_RADIUS = 0.1f;

typedef struct {
    SHOAL_LOG_FIELDS
    float reached;
    float invalid_actions;
    float n;
} NavigateLog;

typedef struct {
    SHOAL_ENV_FIELDS(float, float, NavigateLog)
    int max_steps;
    float x, y, vx, vy, tx, ty;
    int tick;
    float episode_return;
    float invalid_actions;
} Navigate;

SHOAL_SIZES(navigate, Navigate, 1, NAVIGATE_OBS)

static inline float navigate_distance(const Navigate* env) {
    float dx = env->tx - env->x, dy = env->ty - env->y;
    return sqrtf(dx * dx + dy * dy);
}

static void navigate_observe(Navigate* env) {
    float* o = env->observations;
    o[0] = env->x;
    o[1] = env->y;
    o[2] = env->vx * (1.0f / NAVIGATE_VMAX);
    o[3] = env->vy * (1.0f / NAVIGATE_VMAX);
    o[4] = env->tx;
    o[5] = env->ty;
    o[6] = 0.5f * (env->tx - env->x);
    o[7] = 0.5f * (env->ty - env->y);
}

static void navigate_reset(Navigate* env) {
    env->x = 1.8f * shoal_uniform(&env->rng) - 0.9f;
    env->y = 1.8f * shoal_uniform(&env->rng) - 0.9f;
    do {
        env->tx = 1.8f * shoal_uniform(&env->rng) - 0.9f;
        env->ty = 1.8f * shoal_uniform(&env->rng) - 0.9f;
    } while (navigate_distance(env) < 0.5f);
    env->vx = env->vy = 0.0f;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    navigate_observe(env);
}

static void navigate_init(Navigate* env) {
    env->max_steps = shoal_clampi(env->max_steps, 1, 1000000);
    navigate_reset(env);
}

/* One axis of motion: accelerate, drag, cap, move, and stop dead at a wall. */
static inline void navigate_axis(float* p, float* v, float a) {
    *v = shoal_clampf((*v + NAVIGATE_ACCEL * NAVIGATE_DT * a) * NAVIGATE_DRAG, -NAVIGATE_VMAX, NAVIGATE_VMAX);
    *p += NAVIGATE_DT * *v;
    if (*p < -1.0f || *p > 1.0f) {
        *p = shoal_clampf(*p, -1.0f, 1.0f);
        *v = 0.0f;
    }
}

static void navigate_step(Navigate* env) {
    float ax = shoal_continuous(env->actions[0], -1.0f, 1.0f, &env->invalid_actions);
    float ay = shoal_continuous(env->actions[1], -1.0f, 1.0f, &env->invalid_actions);
    float before = navigate_distance(env);
    navigate_axis(&env->x, &env->vx, ax);
    navigate_axis(&env->y, &env->vy, ay);
    env->tick += 1;
    float after = navigate_distance(env);
    int reached = after < NAVIGATE_RADIUS;
    int timed_out = !reached && env->tick >= env->max_steps;
    float reward = (before - after) + (reached ? 1.0f : 0.0f);
    SHOAL_STEP_RESULT(env, 0, reward, reached, timed_out);
    env->episode_return += reward;
    if (reached || timed_out) {
        SHOAL_LOG_EPISODE(env->log, reached ? 1.0f - 0.5f * (float)env->tick / (float)env->max_steps : 0.0f, (float)reached,
                          env->episode_return, (float)env->tick);
        env->log.reached += (float)reached;
        env->log.invalid_actions += env->invalid_actions;
        navigate_reset(env);
        return;
    }
    navigate_observe(env);
}

static void navigate_disc(uint8_t* rgb, float cx, float cy, int radius, uint8_t r, uint8_t g, uint8_t b) {
    int px = (int)((cx + 1.0f) * 0.5f * (NAVIGATE_RENDER_W - 1));
    int py = (int)((1.0f - (cy + 1.0f) * 0.5f) * (NAVIGATE_RENDER_H - 1));
    for (int y = py - radius; y <= py + radius; y++) {
        for (int x = px - radius; x <= px + radius; x++) {
            if (x < 0 || y < 0 || x >= NAVIGATE_RENDER_W || y >= NAVIGATE_RENDER_H) continue;
            if ((x - px) * (x - px) + (y - py) * (y - py) > radius * radius) continue;
            uint8_t* p = rgb + ((size_t)y * NAVIGATE_RENDER_W + x) * 3;
            p[0] = r; p[1] = g; p[2] = b;
        }
    }
}

static void navigate_render(Navigate* env, uint8_t* rgb) {
    memset(rgb, 245, (size_t)NAVIGATE_RENDER_W * NAVIGATE_RENDER_H * 3);
    navigate_disc(rgb, env->tx, env->ty, 8, 220, 70, 70);
    navigate_disc(rgb, env->x, env->y, 4, 40, 90, 200);
}

static void navigate_close(Navigate* env) { (void)env; }

/* A proportional-derivative controller: accelerate toward the target, brake with the velocity. */
static void navigate_scripted(Navigate* env, float* out) {
    out[0] = shoal_clampf(3.0f * (env->tx - env->x) - 1.5f * env->vx, -1.0f, 1.0f);
    out[1] = shoal_clampf(3.0f * (env->ty - env->y) - 1.5f * env->vy, -1.0f, 1.0f);
}

SHOAL_VECTOR(navigate, Navigate, float, float, NAVIGATE_ACT)

#endif
