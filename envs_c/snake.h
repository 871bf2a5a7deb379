/* Snake: many snakes share one arena and compete for food (multi-agent: one agent per snake).
 *
 * Each step every snake moves one cell. Food makes it one longer (up to max_length) and reappears
 * elsewhere; running into a wall or any snake body kills it. A dead snake's body vanishes and it respawns at
 * once as a new episode of length 1, so the arena never stops. Reversing into the own neck keeps the
 * current heading.
 * Observation per snake: an 11x11 window centred on its head, int8 codes 0 empty, 1 food, 2 snake, 3 wall.
 * Actions: 0 up, 1 down, 2 left, 3 right. Reward: +1 per food, -1 on death.
 * perf = min(1, food eaten in the life / goal) where goal is a parameter (default 20 within max_steps).
 *
 * The grid is padded by the view radius on every side and the padding is wall, so an observation is 11
 * row copies and no bounds checks.
 */
#ifndef SHOAL_SNAKE_H
#define SHOAL_SNAKE_H

#include "env.h"

#define SNAKE_VIEW 5
#define SNAKE_WINDOW (2 * SNAKE_VIEW + 1)
#define SNAKE_OBS (SNAKE_WINDOW * SNAKE_WINDOW)
#define SNAKE_ACTIONS 4
#define SNAKE_EMPTY 0
#define SNAKE_FOOD 1
#define SNAKE_BODY 2
#define SNAKE_WALL 3
#define SNAKE_PX 3
#define SNAKE_MAX_SIDE 128
#define SNAKE_RENDER_W (SNAKE_MAX_SIDE * SNAKE_PX)
#define SNAKE_RENDER_H (SNAKE_MAX_SIDE * SNAKE_PX)

typedef struct {
    SHOAL_LOG_FIELDS
    float deaths;
    float invalid_actions;
    float n;
} SnakeLog;

typedef struct {
    int32_t* body;  /* ring buffer of cell indices, max_length long; body[head] is the head */
    int head;
    int length;
    int dir;
    int tick;
    int eaten;
    float episode_return;
    float invalid_actions;
} SnakeBody;

typedef struct {
    SHOAL_ENV_FIELDS(int8_t, int32_t, SnakeLog)
    int width;
    int height;
    int num_snakes;
    int num_food;
    int max_length;
    int max_steps;
    int goal;
    int stride;       /* padded row length */
    int8_t* grid;     /* (height + 2*VIEW) x (width + 2*VIEW), allocated by init */
    int32_t* cells;   /* num_snakes * max_length ring buffers */
    SnakeBody* snakes;
    int delta[SNAKE_ACTIONS];
} Snake;

SHOAL_SIZES(snake, Snake, env->num_snakes, SNAKE_OBS)

static inline int snake_cell(const Snake* env, int x, int y) {
    return (y + SNAKE_VIEW) * env->stride + x + SNAKE_VIEW;
}

/* A random empty interior cell; after a bounded number of tries, -1 (a crowded arena skips the spawn). */
static int snake_empty_cell(Snake* env) {
    for (int tries = 0; tries < 64; tries++) {
        int c = snake_cell(env, shoal_randint(&env->rng, env->width), shoal_randint(&env->rng, env->height));
        if (env->grid[c] == SNAKE_EMPTY) return c;
    }
    return -1;
}

static void snake_place_food(Snake* env) {
    int c = snake_empty_cell(env);
    if (c >= 0) env->grid[c] = SNAKE_FOOD;
}

static void snake_spawn(Snake* env, int i) {
    SnakeBody* s = &env->snakes[i];
    s->head = 0;
    s->length = 0;
    s->dir = shoal_randint(&env->rng, SNAKE_ACTIONS);
    s->tick = 0;
    s->eaten = 0;
    s->episode_return = 0.0f;
    s->invalid_actions = 0.0f;
    int c = snake_empty_cell(env);
    if (c < 0) return; /* stays dead (length 0) and retries next step */
    s->body[0] = c;
    s->length = 1;
    env->grid[c] = SNAKE_BODY;
}

static void snake_kill(Snake* env, int i) {
    SnakeBody* s = &env->snakes[i];
    for (int k = 0; k < s->length; k++) {
        int idx = s->head - k;
        if (idx < 0) idx += env->max_length;
        env->grid[s->body[idx]] = SNAKE_EMPTY;
    }
    s->length = 0;
}

static void snake_observe(Snake* env) {
    for (int i = 0; i < env->num_snakes; i++) {
        SnakeBody* s = &env->snakes[i];
        int8_t* o = env->observations + (size_t)i * SNAKE_OBS;
        if (s->length == 0) {
            memset(o, 0, SNAKE_OBS);
            continue;
        }
        const int8_t* src = env->grid + s->body[s->head] - SNAKE_VIEW * env->stride - SNAKE_VIEW;
        for (int r = 0; r < SNAKE_WINDOW; r++) memcpy(o + r * SNAKE_WINDOW, src + r * env->stride, SNAKE_WINDOW);
    }
}

static void snake_reset(Snake* env) {
    int rows = env->height + 2 * SNAKE_VIEW;
    memset(env->grid, SNAKE_WALL, (size_t)rows * env->stride);
    for (int y = 0; y < env->height; y++) memset(env->grid + snake_cell(env, 0, y), SNAKE_EMPTY, env->width);
    for (int i = 0; i < env->num_snakes; i++) snake_spawn(env, i);
    for (int f = 0; f < env->num_food; f++) snake_place_food(env);
    snake_observe(env);
}

static void snake_init(Snake* env) {
    env->width = shoal_clampi(env->width, 4, SNAKE_MAX_SIDE);
    env->height = shoal_clampi(env->height, 4, SNAKE_MAX_SIDE);
    env->num_snakes = shoal_clampi(env->num_snakes, 1, 4096);
    env->num_food = shoal_clampi(env->num_food, 1, env->width * env->height / 2);
    env->max_length = shoal_clampi(env->max_length, 2, 4096);
    env->max_steps = shoal_clampi(env->max_steps, 1, 1000000);
    env->goal = shoal_clampi(env->goal, 1, 100000);
    env->stride = env->width + 2 * SNAKE_VIEW;
    int rows = env->height + 2 * SNAKE_VIEW;
    env->grid = (int8_t*)calloc((size_t)rows * env->stride, 1);
    env->cells = (int32_t*)calloc((size_t)env->num_snakes * env->max_length, sizeof(int32_t));
    env->snakes = (SnakeBody*)calloc((size_t)env->num_snakes, sizeof(SnakeBody));
    if (!env->grid || !env->cells || !env->snakes) abort(); /* init runs once, outside the step path */
    for (int i = 0; i < env->num_snakes; i++) env->snakes[i].body = env->cells + (size_t)i * env->max_length;
    env->delta[0] = -env->stride;
    env->delta[1] = env->stride;
    env->delta[2] = -1;
    env->delta[3] = 1;
    snake_reset(env);
}

static void snake_end_episode(Snake* env, int i, int died) {
    SnakeBody* s = &env->snakes[i];
    float food = (float)s->eaten;
    SHOAL_LOG_EPISODE(env->log, food >= (float)env->goal ? 1.0f : food / (float)env->goal, food,
                      s->episode_return, (float)s->tick);
    env->log.deaths += (float)died;
    env->log.invalid_actions += s->invalid_actions;
    snake_kill(env, i);
    snake_spawn(env, i);
}

static void snake_step(Snake* env) {
    static const int opposite[SNAKE_ACTIONS] = {1, 0, 3, 2};
    for (int i = 0; i < env->num_snakes; i++) {
        SnakeBody* s = &env->snakes[i];
        env->rewards[i] = 0.0f;
        env->terminals[i] = 0;
        env->truncations[i] = 0;
        int a = shoal_discrete(env->actions[i], SNAKE_ACTIONS, &s->invalid_actions);
        if (s->length == 0) {
            snake_spawn(env, i);
            continue;
        }
        if (s->length > 1 && a == opposite[s->dir]) a = s->dir;
        s->dir = a;
        int next = s->body[s->head] + env->delta[a];
        int8_t what = env->grid[next];
        s->tick += 1;
        if (what == SNAKE_BODY || what == SNAKE_WALL) {
            env->rewards[i] = -1.0f;
            env->terminals[i] = 1;
            s->episode_return -= 1.0f;
            snake_end_episode(env, i, 1);
            continue;
        }
        int grow = what == SNAKE_FOOD && s->length < env->max_length;
        if (!grow) {
            int tail = s->head - s->length + 1;
            if (tail < 0) tail += env->max_length;
            env->grid[s->body[tail]] = SNAKE_EMPTY;
        } else {
            s->length += 1;
        }
        s->head = s->head + 1 == env->max_length ? 0 : s->head + 1;
        s->body[s->head] = next;
        env->grid[next] = SNAKE_BODY;
        if (what == SNAKE_FOOD) {
            s->eaten += 1;
            env->rewards[i] = 1.0f;
            s->episode_return += 1.0f;
            snake_place_food(env);
        }
        if (s->tick >= env->max_steps) {
            env->truncations[i] = 1;
            snake_end_episode(env, i, 0);
        }
    }
    snake_observe(env);
}

static void snake_render(Snake* env, uint8_t* rgb) {
    static const uint8_t colors[4][3] = {{16, 16, 24}, {220, 60, 60}, {80, 200, 120}, {90, 90, 100}};
    memset(rgb, 0, (size_t)SNAKE_RENDER_W * SNAKE_RENDER_H * 3);
    for (int y = 0; y < env->height; y++) {
        for (int x = 0; x < env->width; x++) {
            int8_t v = env->grid[snake_cell(env, x, y)];
            const uint8_t* col = colors[v & 3];
            for (int py = 0; py < SNAKE_PX; py++) {
                uint8_t* p = rgb + (((size_t)(y * SNAKE_PX + py)) * SNAKE_RENDER_W + (size_t)x * SNAKE_PX) * 3;
                for (int px = 0; px < SNAKE_PX; px++, p += 3) {
                    p[0] = col[0]; p[1] = col[1]; p[2] = col[2];
                }
            }
        }
    }
    for (int i = 0; i < env->num_snakes; i++) {
        SnakeBody* s = &env->snakes[i];
        if (s->length == 0) continue;
        int c = s->body[s->head];
        int x = c % env->stride - SNAKE_VIEW, y = c / env->stride - SNAKE_VIEW;
        uint8_t* p = rgb + (((size_t)(y * SNAKE_PX + 1)) * SNAKE_RENDER_W + (size_t)x * SNAKE_PX + 1) * 3;
        p[0] = 255; p[1] = 255; p[2] = 255;
    }
}

static void snake_close(Snake* env) {
    free(env->grid);
    free(env->cells);
    free(env->snakes);
    env->grid = NULL;
    env->cells = NULL;
    env->snakes = NULL;
}

/* Head for the nearest food in view along a safe first move; with none in view, keep going if safe. */
static void snake_scripted(Snake* env, int32_t* out) {
    static const int dxs[SNAKE_ACTIONS] = {0, 0, -1, 1};
    static const int dys[SNAKE_ACTIONS] = {-1, 1, 0, 0};
    for (int i = 0; i < env->num_snakes; i++) {
        SnakeBody* s = &env->snakes[i];
        if (s->length == 0) {
            out[i] = 0;
            continue;
        }
        int head = s->body[s->head];
        int best_d = 1 << 30, fx = 0, fy = 0;
        for (int dy = -SNAKE_VIEW; dy <= SNAKE_VIEW; dy++) {
            for (int dx = -SNAKE_VIEW; dx <= SNAKE_VIEW; dx++) {
                if (env->grid[head + dy * env->stride + dx] != SNAKE_FOOD) continue;
                int d = abs(dx) + abs(dy);
                if (d < best_d) { best_d = d; fx = dx; fy = dy; }
            }
        }
        int choice = -1, choice_score = -1000000;
        for (int a = 0; a < SNAKE_ACTIONS; a++) {
            int8_t what = env->grid[head + env->delta[a]];
            if (what == SNAKE_BODY || what == SNAKE_WALL) continue;
            /* Count free neighbours of the target cell: avoids walking into dead ends one step ahead. */
            int free_next = 0;
            for (int b = 0; b < SNAKE_ACTIONS; b++) {
                int8_t w2 = env->grid[head + env->delta[a] + env->delta[b]];
                free_next += w2 == SNAKE_EMPTY || w2 == SNAKE_FOOD;
            }
            int score = 10 * free_next + (a == s->dir ? 1 : 0);
            if (best_d < (1 << 30)) score -= 20 * (abs(fx - dxs[a]) + abs(fy - dys[a]));
            if (free_next == 0) score -= 1000;
            if (score > choice_score) { choice_score = score; choice = a; }
        }
        out[i] = choice < 0 ? s->dir : choice;
    }
}

SHOAL_VECTOR(snake, Snake, int8_t, int32_t, 1)

#endif
