/* Pong: two paddles, first to `points` wins the game (one episode).
 *
 * Seat 0 plays the left paddle, seat 1 the right. With opponent = 0 a built-in bot plays seat 1 and the
 * environment has one agent; with opponent = 1 both seats read the action buffer (agents 2i and 2i+1).
 * The bot only tracks an approaching ball and moves slower than the steepest ball, so steep shots beat it.
 * Where the ball meets a paddle sets its vertical speed, and every hit speeds it up a little.
 * Observation, per seat and mirrored so every seat sees itself on the left (all in [-1, 1]): own paddle y,
 * other paddle y, ball x, ball y, ball vx, ball vy, own points / points, other points / points.
 * Actions: 0 stay, 1 up, 2 down. Reward per seat: +1 for a point won, -1 for a point lost (zero-sum).
 * perf (seat 0's view, against the bot or in self-play) = share of the game's points won by seat 0: the
 * rally win rate, which grows smoothly while the game win rate (logged as `wins`) jumps from 0 to 1.
 */
#ifndef SHOAL_PONG_H
#define SHOAL_PONG_H

#include "env.h"

#define PONG_OBS 8
#define PONG_ACTIONS 3
#define PONG_RENDER_W 160
#define PONG_RENDER_H 120

static const float PONG_PADDLE_X = 0.03f;     /* distance of each paddle's face from its wall */
static const float PONG_PADDLE_HALF = 0.08f;
static const float PONG_PADDLE_SPEED = 0.03f;
static const float PONG_BOT_SPEED = 0.014f;
static const float PONG_VX0 = 0.012f;
static const float PONG_VX_MAX = 0.024f;
static const float PONG_VY_MAX = 0.022f;

typedef struct {
    SHOAL_LOG_FIELDS
    float wins;
    float hits;
    float invalid_actions;
    float n;
} PongLog;

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, PongLog)
    int opponent;
    int frameskip;
    int points;
    int max_steps;
    float paddle[2];
    float ball_x, ball_y, ball_vx, ball_vy;
    int score[2];
    int tick;
    int hits;
    float episode_return;
    float invalid_actions;
} Pong;

SHOAL_SIZES(pong, Pong, env->opponent ? 2 : 1, PONG_OBS)

static void pong_serve(Pong* env, int towards) {
    env->ball_x = 0.5f;
    env->ball_y = 0.25f + 0.5f * shoal_uniform(&env->rng);
    env->ball_vx = towards == 0 ? -PONG_VX0 : PONG_VX0;
    env->ball_vy = (2.0f * shoal_uniform(&env->rng) - 1.0f) * 0.008f;
}

static void pong_observe(Pong* env) {
    const float inv_points = 1.0f / (float)env->points;
    for (int s = 0; s < pong_num_agents(env); s++) {
        float* o = env->observations + s * PONG_OBS;
        float bx = s == 0 ? env->ball_x : 1.0f - env->ball_x;
        float vx = s == 0 ? env->ball_vx : -env->ball_vx;
        o[0] = 2.0f * env->paddle[s] - 1.0f;
        o[1] = 2.0f * env->paddle[1 - s] - 1.0f;
        o[2] = shoal_clampf(2.0f * bx - 1.0f, -1.0f, 1.0f);
        o[3] = 2.0f * env->ball_y - 1.0f;
        o[4] = vx * (1.0f / PONG_VX_MAX);
        o[5] = env->ball_vy * (1.0f / PONG_VY_MAX);
        o[6] = (float)env->score[s] * inv_points;
        o[7] = (float)env->score[1 - s] * inv_points;
    }
}

static void pong_reset(Pong* env) {
    env->paddle[0] = env->paddle[1] = 0.5f;
    env->score[0] = env->score[1] = 0;
    env->tick = 0;
    env->hits = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    pong_serve(env, shoal_randint(&env->rng, 2));
    pong_observe(env);
}

static void pong_init(Pong* env) {
    env->opponent = shoal_clampi(env->opponent, 0, 1);
    env->frameskip = shoal_clampi(env->frameskip, 1, 64);
    env->points = shoal_clampi(env->points, 1, 1000);
    env->max_steps = shoal_clampi(env->max_steps, 1, 1000000);
    pong_reset(env);
}

/* The bot: move toward an approaching ball, drift back to the middle otherwise. */
static float pong_bot_move(const Pong* env) {
    float target = env->ball_vx > 0.0f ? env->ball_y : 0.5f;
    float gap = target - env->paddle[1];
    return shoal_clampf(gap, -PONG_BOT_SPEED, PONG_BOT_SPEED);
}

/* A paddle at face x meets the ball when the ball crosses that x; returns 1 on a hit. */
static int pong_paddle_hit(Pong* env, int seat) {
    float offset = (env->ball_y - env->paddle[seat]) * (1.0f / PONG_PADDLE_HALF);
    if (offset < -1.1f || offset > 1.1f) return 0;
    float speed = shoal_clampf(fabsf(env->ball_vx) * 1.05f, PONG_VX0, PONG_VX_MAX);
    env->ball_vx = seat == 0 ? speed : -speed;
    env->ball_vy = shoal_clampf(offset, -1.0f, 1.0f) * PONG_VY_MAX;
    env->ball_x = seat == 0 ? PONG_PADDLE_X : 1.0f - PONG_PADDLE_X;
    env->hits += 1;
    return 1;
}

/* One frame; returns the seat that won a point, or -1. */
static int pong_frame(Pong* env, float move0, float move1) {
    env->paddle[0] = shoal_clampf(env->paddle[0] + move0, 0.0f, 1.0f);
    env->paddle[1] = shoal_clampf(env->paddle[1] + move1, 0.0f, 1.0f);
    env->ball_x += env->ball_vx;
    env->ball_y += env->ball_vy;
    if (env->ball_y < 0.0f) {
        env->ball_y = -env->ball_y;
        env->ball_vy = -env->ball_vy;
    } else if (env->ball_y > 1.0f) {
        env->ball_y = 2.0f - env->ball_y;
        env->ball_vy = -env->ball_vy;
    }
    if (env->ball_vx < 0.0f && env->ball_x <= PONG_PADDLE_X && env->ball_x - env->ball_vx > PONG_PADDLE_X) {
        pong_paddle_hit(env, 0);
    } else if (env->ball_vx > 0.0f && env->ball_x >= 1.0f - PONG_PADDLE_X &&
               env->ball_x - env->ball_vx < 1.0f - PONG_PADDLE_X) {
        pong_paddle_hit(env, 1);
    }
    if (env->ball_x < 0.0f) return 1;
    if (env->ball_x > 1.0f) return 0;
    return -1;
}

static void pong_step(Pong* env) {
    static const float moves[PONG_ACTIONS] = {0.0f, PONG_PADDLE_SPEED, -PONG_PADDLE_SPEED};
    float move0 = moves[shoal_discrete(env->actions[0], PONG_ACTIONS, &env->invalid_actions)];
    float move1 = env->opponent ? moves[shoal_discrete(env->actions[1], PONG_ACTIONS, &env->invalid_actions)] : 0.0f;
    float reward0 = 0.0f;
    for (int f = 0; f < env->frameskip; f++) {
        int winner = pong_frame(env, move0, env->opponent ? move1 : pong_bot_move(env));
        if (winner >= 0) {
            env->score[winner] += 1;
            reward0 += winner == 0 ? 1.0f : -1.0f;
            pong_serve(env, winner);
            if (env->score[winner] >= env->points) break;
        }
    }
    env->tick += 1;
    int done = env->score[0] >= env->points || env->score[1] >= env->points;
    int timed_out = !done && env->tick >= env->max_steps;
    SHOAL_ZERO_SUM_RESULT(env, env->opponent, reward0, done, timed_out);
    env->episode_return += reward0;
    if (done || timed_out) {
        int total = env->score[0] + env->score[1];
        SHOAL_LOG_EPISODE(env->log, total > 0 ? (float)env->score[0] / (float)total : 0.5f, (float)env->score[0],
                          env->episode_return, (float)env->tick);
        env->log.wins += env->score[0] > env->score[1] ? 1.0f : (env->score[0] == env->score[1] ? 0.5f : 0.0f);
        env->log.hits += (float)env->hits;
        env->log.invalid_actions += env->invalid_actions;
        pong_reset(env);
        return;
    }
    pong_observe(env);
}

static void pong_rect(uint8_t* rgb, int x0, int y0, int w, int h) {
    shoal_fill_rect(rgb, PONG_RENDER_W, PONG_RENDER_H, x0, y0, w, h, 230, 230, 230);
}

static void pong_render(Pong* env, uint8_t* rgb) {
    const float W = PONG_RENDER_W, H = PONG_RENDER_H;
    memset(rgb, 20, (size_t)PONG_RENDER_W * PONG_RENDER_H * 3);
    for (int y = 0; y < PONG_RENDER_H; y += 8) pong_rect(rgb, PONG_RENDER_W / 2, y, 1, 4);
    int ph = (int)(2.0f * PONG_PADDLE_HALF * H);
    pong_rect(rgb, (int)(PONG_PADDLE_X * W) - 3, (int)((1.0f - env->paddle[0] - PONG_PADDLE_HALF) * H), 3, ph);
    pong_rect(rgb, (int)((1.0f - PONG_PADDLE_X) * W), (int)((1.0f - env->paddle[1] - PONG_PADDLE_HALF) * H), 3, ph);
    pong_rect(rgb, (int)(env->ball_x * W) - 1, (int)((1.0f - env->ball_y) * H) - 1, 3, 3);
    for (int i = 0; i < env->score[0] && i < 20; i++) pong_rect(rgb, 4 + 3 * i, 3, 2, 4);
    for (int i = 0; i < env->score[1] && i < 20; i++) pong_rect(rgb, PONG_RENDER_W - 6 - 3 * i, 3, 2, 4);
}

static void pong_close(Pong* env) { (void)env; }

/* Where the ball will cross seat s's paddle line, folding its path off the top and bottom walls. */
static float pong_intercept(const Pong* env, int s) {
    float face = s == 0 ? PONG_PADDLE_X : 1.0f - PONG_PADDLE_X;
    float t = (face - env->ball_x) / env->ball_vx;
    float y = fmodf(fabsf(env->ball_y + env->ball_vy * t), 2.0f);
    return y > 1.0f ? 2.0f - y : y;
}

/* Both seats move to where an approaching ball will arrive (else to the middle), a little off-centre so
 * the return comes back at an angle. */
static void pong_scripted(Pong* env, int32_t* out) {
    float dead = shoal_clampf(PONG_PADDLE_SPEED * (float)env->frameskip * 0.5f, 0.01f, 0.04f);
    for (int s = 0; s < pong_num_agents(env); s++) {
        int approaching = s == 0 ? env->ball_vx < 0.0f : env->ball_vx > 0.0f;
        float target = approaching ? pong_intercept(env, s) - 0.03f : 0.5f;
        float gap = target - env->paddle[s];
        out[s] = gap > dead ? 1 : (gap < -dead ? 2 : 0);
    }
}

SHOAL_VECTOR(pong, Pong, float, int32_t, 1)

#endif
