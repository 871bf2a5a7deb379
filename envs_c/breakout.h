/* Breakout: keep the ball in play with the paddle and clear a wall of 6 x 16 bricks, with 5 balls.
 *
 * Where the ball meets the paddle sets its horizontal speed (centre straight up, edges steep), so the player
 * aims. A lost ball is served again from the middle of the field towards the paddle. One agent step
 * repeats the action for `frameskip` frames.
 * Observation (all in [-1, 1]): paddle x, ball x, ball y, ball vx, ball vy, balls left, then one 0/1 per
 * brick. Actions: 0 stay, 1 left, 2 right. Reward: +1 per brick, -1 per lost ball.
 * perf = bricks cleared / 96 (score / max score).
 */
#ifndef SHOAL_BREAKOUT_H
#define SHOAL_BREAKOUT_H

#include "env.h"

#define BREAKOUT_ROWS 6
#define BREAKOUT_COLS 16
#define BREAKOUT_BRICKS (BREAKOUT_ROWS * BREAKOUT_COLS)
#define BREAKOUT_OBS (6 + BREAKOUT_BRICKS)
#define BREAKOUT_ACTIONS 3
#define BREAKOUT_RENDER_W 160
#define BREAKOUT_RENDER_H 192

static const float BREAKOUT_W = 160.0f;
static const float BREAKOUT_H = 192.0f;
static const float BREAKOUT_BRICK_W = 10.0f;
static const float BREAKOUT_BRICK_H = 6.0f;
static const float BREAKOUT_BRICK_TOP = 40.0f;
static const float BREAKOUT_PADDLE_Y = 176.0f;
static const float BREAKOUT_PADDLE_HALF = 12.0f;
static const float BREAKOUT_PADDLE_SPEED = 6.0f;
static const float BREAKOUT_BALL_SPEED = 3.0f;
static const int BREAKOUT_LIVES = 5;

typedef struct {
    SHOAL_LOG_FIELDS
    float balls_lost;
    float invalid_actions;
    float n;
} BreakoutLog;

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, BreakoutLog)
    int frameskip;
    int max_steps;
    float paddle_x;
    float ball_x, ball_y, ball_vx, ball_vy;
    int lives;
    int bricks_left;
    int tick;
    float episode_return;
    float invalid_actions;
    uint8_t bricks[BREAKOUT_BRICKS];
} Breakout;

SHOAL_SIZES(breakout, Breakout, 1, BREAKOUT_OBS)

static void breakout_serve(Breakout* env) {
    env->ball_x = 20.0f + 120.0f * shoal_uniform(&env->rng);
    env->ball_y = 100.0f;
    env->ball_vx = (2.0f * shoal_uniform(&env->rng) - 1.0f) * 2.0f;
    env->ball_vy = BREAKOUT_BALL_SPEED;
}

static void breakout_observe(Breakout* env) {
    float* o = env->observations;
    o[0] = 2.0f * env->paddle_x / BREAKOUT_W - 1.0f;
    o[1] = shoal_clampf(2.0f * env->ball_x / BREAKOUT_W - 1.0f, -1.0f, 1.0f);
    o[2] = shoal_clampf(2.0f * env->ball_y / BREAKOUT_H - 1.0f, -1.0f, 1.0f);
    o[3] = env->ball_vx * (1.0f / BREAKOUT_BALL_SPEED);
    o[4] = env->ball_vy * (1.0f / BREAKOUT_BALL_SPEED);
    o[5] = (float)env->lives * (1.0f / BREAKOUT_LIVES);
    /* Bricks are written when they break (breakout_step), not every frame. */
}

static void breakout_reset(Breakout* env) {
    memset(env->bricks, 1, sizeof(env->bricks));
    for (int i = 0; i < BREAKOUT_BRICKS; i++) env->observations[6 + i] = 1.0f;
    env->bricks_left = BREAKOUT_BRICKS;
    env->lives = BREAKOUT_LIVES;
    env->paddle_x = BREAKOUT_W * 0.5f;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    breakout_serve(env);
    breakout_observe(env);
}

static void breakout_init(Breakout* env) {
    env->frameskip = shoal_clampi(env->frameskip, 1, 64);
    env->max_steps = shoal_clampi(env->max_steps, 1, 1000000);
    breakout_reset(env);
}

/* One frame of physics; returns the reward it earned. */
static float breakout_frame(Breakout* env, float move) {
    env->paddle_x = shoal_clampf(env->paddle_x + move, BREAKOUT_PADDLE_HALF, BREAKOUT_W - BREAKOUT_PADDLE_HALF);
    float prev_y = env->ball_y;
    env->ball_x += env->ball_vx;
    env->ball_y += env->ball_vy;
    if (env->ball_x < 0.0f) {
        env->ball_x = -env->ball_x;
        env->ball_vx = -env->ball_vx;
    } else if (env->ball_x >= BREAKOUT_W) {
        env->ball_x = 2.0f * BREAKOUT_W - env->ball_x - 0.001f;
        env->ball_vx = -env->ball_vx;
    }
    if (env->ball_y < 0.0f) {
        env->ball_y = -env->ball_y;
        env->ball_vy = -env->ball_vy;
    }
    float reward = 0.0f;
    float rel = env->ball_y - BREAKOUT_BRICK_TOP;
    if (rel >= 0.0f && rel < BREAKOUT_BRICK_H * BREAKOUT_ROWS) {
        int row = (int)(rel * (1.0f / BREAKOUT_BRICK_H));
        int col = shoal_clampi((int)(env->ball_x * (1.0f / BREAKOUT_BRICK_W)), 0, BREAKOUT_COLS - 1);
        int k = row * BREAKOUT_COLS + col;
        if (env->bricks[k]) {
            env->bricks[k] = 0;
            env->observations[6 + k] = 0.0f;
            env->bricks_left -= 1;
            reward += 1.0f;
            /* Bounce back out of the brick so the next frame does not hit its neighbour at once. */
            env->ball_y = prev_y;
            env->ball_vy = -env->ball_vy;
        }
    }
    if (env->ball_vy > 0.0f && prev_y < BREAKOUT_PADDLE_Y && env->ball_y >= BREAKOUT_PADDLE_Y) {
        float offset = (env->ball_x - env->paddle_x) * (1.0f / BREAKOUT_PADDLE_HALF);
        if (offset >= -1.15f && offset <= 1.15f) {
            offset = shoal_clampf(offset, -1.0f, 1.0f);
            env->ball_vx = offset * BREAKOUT_BALL_SPEED;
            /* Never exactly vertical: a vertical ball under a cleared column would loop forever. */
            if (env->ball_vx > -0.3f && env->ball_vx < 0.3f) env->ball_vx = env->ball_vx < 0.0f ? -0.3f : 0.3f;
            env->ball_vy = -BREAKOUT_BALL_SPEED;
            env->ball_y = 2.0f * BREAKOUT_PADDLE_Y - env->ball_y;
        }
    }
    if (env->ball_y > BREAKOUT_H) {
        env->lives -= 1;
        reward -= 1.0f;
        env->log.balls_lost += 1.0f;
        breakout_serve(env);
    }
    return reward;
}

static void breakout_step(Breakout* env) {
    static const float moves[BREAKOUT_ACTIONS] = {0.0f, -BREAKOUT_PADDLE_SPEED, BREAKOUT_PADDLE_SPEED};
    int a = shoal_discrete(env->actions[0], BREAKOUT_ACTIONS, &env->invalid_actions);
    float reward = 0.0f;
    for (int f = 0; f < env->frameskip && env->lives > 0 && env->bricks_left > 0; f++) {
        reward += breakout_frame(env, moves[a]);
    }
    env->tick += 1;
    int done = env->lives <= 0 || env->bricks_left <= 0;
    int timed_out = !done && env->tick >= env->max_steps;
    SHOAL_STEP_RESULT(env, 0, reward, done, timed_out);
    env->episode_return += reward;
    if (done || timed_out) {
        float cleared = (float)(BREAKOUT_BRICKS - env->bricks_left);
        SHOAL_LOG_EPISODE(env->log, cleared * (1.0f / BREAKOUT_BRICKS), cleared,
                          env->episode_return, (float)env->tick);
        env->log.invalid_actions += env->invalid_actions;
        breakout_reset(env);
        return;
    }
    breakout_observe(env);
}

static void breakout_rect(uint8_t* rgb, int x0, int y0, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    shoal_fill_rect(rgb, BREAKOUT_RENDER_W, BREAKOUT_RENDER_H, x0, y0, w, h, r, g, b);
}

static void breakout_render(Breakout* env, uint8_t* rgb) {
    static const uint8_t colors[BREAKOUT_ROWS][3] = {
        {200, 72, 72}, {198, 108, 58}, {180, 122, 48}, {162, 162, 42}, {72, 160, 72}, {66, 72, 200}};
    memset(rgb, 0, (size_t)BREAKOUT_RENDER_W * BREAKOUT_RENDER_H * 3);
    for (int k = 0; k < BREAKOUT_BRICKS; k++) {
        if (!env->bricks[k]) continue;
        int row = k / BREAKOUT_COLS, col = k % BREAKOUT_COLS;
        breakout_rect(rgb, col * 10, 40 + row * 6, 9, 5, colors[row][0], colors[row][1], colors[row][2]);
    }
    breakout_rect(rgb, (int)(env->paddle_x - BREAKOUT_PADDLE_HALF), (int)BREAKOUT_PADDLE_Y, 24, 4, 200, 200, 200);
    breakout_rect(rgb, (int)env->ball_x - 1, (int)env->ball_y - 1, 3, 3, 255, 255, 255);
    for (int i = 0; i < env->lives; i++) breakout_rect(rgb, 4 + 6 * i, 4, 4, 4, 200, 200, 200);
}

static void breakout_close(Breakout* env) { (void)env; }

/* Follow the ball, hitting it off-centre by an amount that changes over time so it reaches every column. */
static void breakout_scripted(Breakout* env, int32_t* out) {
    float aim = (float)((env->tick / 23) % 5 - 2) * 3.0f;
    float target = env->ball_vy > 0.0f ? env->ball_x + aim : BREAKOUT_W * 0.5f;
    float gap = target - env->paddle_x;
    /* One action moves the paddle frameskip frames: stop within half of that to avoid oscillating. */
    float dead = shoal_clampf(BREAKOUT_PADDLE_SPEED * (float)env->frameskip * 0.5f, 3.0f, 9.0f);
    out[0] = gap > dead ? 2 : (gap < -dead ? 1 : 0);
}

SHOAL_VECTOR(breakout, Breakout, float, int32_t, 1)

#endif
