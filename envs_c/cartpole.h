/* CartPole: balance a pole on a cart by pushing left or right (classic Barto-Sutton-Anderson dynamics).
 * perf = episode length / max_steps, so a pole held for the whole episode scores 1.
 */
#ifndef SHOAL_CARTPOLE_H
#define SHOAL_CARTPOLE_H

#include "env.h"

#define CARTPOLE_OBS 4
#define CARTPOLE_ACTIONS 2
#define CARTPOLE_RENDER_W 240
#define CARTPOLE_RENDER_H 160

static const float CARTPOLE_GRAVITY = 9.8f;
static const float CARTPOLE_CART_MASS = 1.0f;
static const float CARTPOLE_POLE_MASS = 0.1f;
static const float CARTPOLE_HALF_LENGTH = 0.5f;
static const float CARTPOLE_FORCE = 10.0f;
static const float CARTPOLE_DT = 0.02f;
static const float CARTPOLE_X_LIMIT = 2.4f;
static const float CARTPOLE_THETA_LIMIT = 12.0f * 2.0f * 3.14159265f / 360.0f;

typedef struct {
    SHOAL_LOG_FIELDS
    float invalid_actions;
    float n;
} CartPoleLog;

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, CartPoleLog)
    int max_steps;
    float x, x_dot, theta, theta_dot;
    int tick;
    float episode_return;
    float invalid_actions;
} CartPole;

SHOAL_SIZES(cartpole, CartPole, 1, CARTPOLE_OBS)

static void cartpole_observe(CartPole* env) {
    env->observations[0] = env->x;
    env->observations[1] = env->x_dot;
    env->observations[2] = env->theta;
    env->observations[3] = env->theta_dot;
}

static void cartpole_reset(CartPole* env) {
    env->x = 0.1f * shoal_uniform(&env->rng) - 0.05f;
    env->x_dot = 0.1f * shoal_uniform(&env->rng) - 0.05f;
    env->theta = 0.1f * shoal_uniform(&env->rng) - 0.05f;
    env->theta_dot = 0.1f * shoal_uniform(&env->rng) - 0.05f;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    cartpole_observe(env);
}

static void cartpole_init(CartPole* env) {
    env->max_steps = shoal_clampi(env->max_steps, 1, 1000000);
    cartpole_reset(env);
}

static void cartpole_step(CartPole* env) {
    int action = shoal_discrete(env->actions[0], CARTPOLE_ACTIONS, &env->invalid_actions);
    float force = action == 1 ? CARTPOLE_FORCE : -CARTPOLE_FORCE;
    float cos_t = cosf(env->theta);
    float sin_t = sinf(env->theta);
    float total_mass = CARTPOLE_CART_MASS + CARTPOLE_POLE_MASS;
    float pole_moment = CARTPOLE_POLE_MASS * CARTPOLE_HALF_LENGTH;
    float temp = (force + pole_moment * env->theta_dot * env->theta_dot * sin_t) / total_mass;
    float theta_acc = (CARTPOLE_GRAVITY * sin_t - cos_t * temp) /
                      (CARTPOLE_HALF_LENGTH *
                       (4.0f / 3.0f - CARTPOLE_POLE_MASS * cos_t * cos_t / total_mass));
    float x_acc = temp - pole_moment * theta_acc * cos_t / total_mass;

    env->x += CARTPOLE_DT * env->x_dot;
    env->x_dot += CARTPOLE_DT * x_acc;
    env->theta += CARTPOLE_DT * env->theta_dot;
    env->theta_dot += CARTPOLE_DT * theta_acc;
    env->tick += 1;

    int fell = env->x < -CARTPOLE_X_LIMIT || env->x > CARTPOLE_X_LIMIT ||
               env->theta < -CARTPOLE_THETA_LIMIT || env->theta > CARTPOLE_THETA_LIMIT;
    int timed_out = !fell && env->tick >= env->max_steps;
    SHOAL_STEP_RESULT(env, 0, 1.0f, fell, timed_out);
    env->episode_return += 1.0f;

    if (fell || timed_out) {
        SHOAL_LOG_EPISODE(env->log, (float)env->tick / (float)env->max_steps, (float)env->tick,
                          env->episode_return, (float)env->tick);
        env->log.invalid_actions += env->invalid_actions;
        cartpole_reset(env);
        return;
    }
    cartpole_observe(env);
}

static void cartpole_render(CartPole* env, uint8_t* rgb) {
    const int w = CARTPOLE_RENDER_W, h = CARTPOLE_RENDER_H;
    memset(rgb, 255, (size_t)w * h * 3);
    const float scale = (float)w / (2.0f * CARTPOLE_X_LIMIT * 1.2f);
    const int ground = h - 30;
    for (int x = 0; x < w; x++) {
        uint8_t* p = rgb + ((size_t)ground * w + x) * 3;
        p[0] = p[1] = p[2] = 0;
    }
    int cx = (int)(w / 2 + env->x * scale);
    for (int y = ground - 12; y < ground; y++) {
        for (int x = cx - 18; x <= cx + 18; x++) {
            if (x < 0 || x >= w) continue;
            uint8_t* p = rgb + ((size_t)y * w + x) * 3;
            p[0] = 40; p[1] = 40; p[2] = 40;
        }
    }
    const float pole_px = 2.0f * CARTPOLE_HALF_LENGTH * scale;
    for (int k = 0; k < (int)pole_px; k++) {
        int px = cx + (int)(sinf(env->theta) * (float)k);
        int py = ground - 12 - (int)(cosf(env->theta) * (float)k);
        for (int dx = -2; dx <= 2; dx++) {
            int x = px + dx;
            if (x < 0 || x >= w || py < 0 || py >= h) continue;
            uint8_t* p = rgb + ((size_t)py * w + x) * 3;
            p[0] = 200; p[1] = 130; p[2] = 60;
        }
    }
}

static void cartpole_close(CartPole* env) { (void)env; }

/* Push toward where the pole is falling, with a little centring so the cart does not drift off the track. */
static void cartpole_scripted(CartPole* env, int32_t* out) {
    float lean = env->theta + 0.5f * env->theta_dot + 0.01f * env->x + 0.05f * env->x_dot;
    out[0] = lean > 0.0f ? 1 : 0;
}

SHOAL_VECTOR(cartpole, CartPole, float, int32_t, 1)

#endif
