/* moba: two teams of heroes, three lanes, towers and a base each; destroy the enemy base to win.
 *
 * The map is an open 24x13 grid. Each team has a base at the middle of its edge and a tower on each of
 * three lanes (top, middle, bottom); team 1's side is team 0's turned half a turn (point reflection), so the
 * game is fair and every seat can be given the same view of it. A base can be damaged only once one of its
 * team's towers has fallen. Towers and bases shoot the nearest enemy hero in range. A hero that dies
 * respawns at its fountain after a delay; standing near the own fountain heals.
 *
 * Agents: team_size heroes per team (3..5). With opponent = 0 a scripted bot of strength `bot` (0 weak,
 * 1 medium, 2 strong) plays team 1 and the environment has team_size agents; with opponent = 1 both teams
 * read the action buffer (agents 0..T-1 are team 0, T..2T-1 team 1).
 *
 * Observation (float32, in [-1, 1]), egocentric: everything is seen from the hero's side of the map (team 1's
 * coordinates are reflected), with others as offsets from the hero. Enemy heroes are seen only within
 * vision range of an ally hero or an own structure (team vision); structures are always known.
 *   self (12): x, y, hp, alive, respawn timer, ability cooldown, time elapsed, slot one-hot (5)
 *   allies (4 x 4): alive, dx, dy, hp
 *   enemies (5 x 5): visible, dx, dy, hp, within my attack range
 *   structures (8 x 5: own base and towers, then the enemy's): alive, dx, dy, hp, a flag (own: an enemy hero
 *     is in its range; enemy: I can hit it now)
 * Actions, multidiscrete [5, 4]: move (stay, up, down, back, forward: forward is always towards the enemy
 * base) and act (none, attack with heroes first, attack with structures first, nova). An attack hits the
 * lowest-hp target of the preferred kind within range, else one of the other kind. Nova hits every enemy
 * hero near the caster, then cools down.
 * Rewards, per hero, with deliberately hackable coefficients: reward_win (+ to the winners, - to the losers),
 * reward_kill to the hero that lands a kill, reward_death to the hero that dies, reward_damage per 100 damage
 * dealt to heroes, reward_objective per structure's worth of damage dealt to structures.
 * The game ends when a base falls, or after max_steps, when the team with more structure health left wins
 * (equal: a draw); both are terminal, because the clock is part of the game and is observed.
 * perf = team 0's result, 1 win, 0.5 draw, 0 loss: the win rate against the bot (strongest by default).
 */
#ifndef SHOAL_MOBA_H
#define SHOAL_MOBA_H

#include "env.h"

#define MOBA_W 24
#define MOBA_H 13
#define MOBA_MAX_TEAM 5
#define MOBA_MAX_HEROES (2 * MOBA_MAX_TEAM)
#define MOBA_STRUCTS 4 /* per team: the base, then the top, middle and bottom towers */
#define MOBA_OBS_SELF 12
#define MOBA_OBS_ALLY 4
#define MOBA_OBS_ENEMY 5
#define MOBA_OBS_STRUCT 5
#define MOBA_OBS                                                                                        \
    (MOBA_OBS_SELF + (MOBA_MAX_TEAM - 1) * MOBA_OBS_ALLY + MOBA_MAX_TEAM * MOBA_OBS_ENEMY +             \
     2 * MOBA_STRUCTS * MOBA_OBS_STRUCT)
#define MOBA_MOVES 5
#define MOBA_ACTS 4
#define MOBA_CELL 8
#define MOBA_RENDER_W (MOBA_W * MOBA_CELL)
#define MOBA_RENDER_H (MOBA_H * MOBA_CELL + 8)

enum { MOBA_STAY, MOBA_UP, MOBA_DOWN, MOBA_BACK, MOBA_FORWARD };
enum { MOBA_NONE, MOBA_HIT_HEROES, MOBA_HIT_STRUCTS, MOBA_NOVA };

static const int MOBA_HERO_HP = 100;
static const int MOBA_HERO_DMG = 10;
static const int MOBA_RANGE = 2;      /* Chebyshev distance of a hero's attack */
static const int MOBA_NOVA_DMG = 30;
static const int MOBA_NOVA_RADIUS = 2;
static const int MOBA_NOVA_COOLDOWN = 12;
static const int MOBA_TOWER_HP = 400;
static const int MOBA_BASE_HP = 600;
static const int MOBA_STRUCT_DMG = 8;
static const int MOBA_STRUCT_RANGE = 3;
static const int MOBA_VISION = 4;
static const int MOBA_RESPAWN = 15;
static const int MOBA_FOUNTAIN = 2;   /* heal within this distance of the own base */
static const int MOBA_HEAL = 10;

/* Team 0's structures; team 1's are their reflections. */
static const int MOBA_SX[MOBA_STRUCTS] = {1, 6, 6, 6};
static const int MOBA_SY[MOBA_STRUCTS] = {6, 1, 6, 11};

typedef struct {
    SHOAL_LOG_FIELDS
    float wins;
    float draws;
    float kills;
    float deaths;
    float invalid_actions;
    float n;
} MobaLog;

typedef struct {
    int x, y;
    int hp;        /* 0 while dead */
    int respawn;   /* steps until it comes back, 0 while alive */
    int cooldown;  /* steps until nova is ready */
    int retreat;   /* bots: heading home to heal */
} MobaHero;

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, MobaLog)
    int opponent;
    int team_size;
    int bot;
    int max_steps;
    float reward_win;
    float reward_kill;
    float reward_death;
    float reward_damage;
    float reward_objective;
    MobaHero hero[MOBA_MAX_HEROES]; /* team t's slot k is hero t * team_size + k */
    int shp[2][MOBA_STRUCTS];
    int tick;
    float episode_return; /* summed over team 0's heroes */
    float kills, deaths, invalid_actions;
} Moba;

SHOAL_SIZES(moba, Moba, env->team_size * (env->opponent ? 2 : 1), MOBA_OBS)

static inline int moba_team(const Moba* env, int h) { return h >= env->team_size; }
static inline int moba_sx(int team, int s) { return team ? MOBA_W - 1 - MOBA_SX[s] : MOBA_SX[s]; }
static inline int moba_sy(int team, int s) { return team ? MOBA_H - 1 - MOBA_SY[s] : MOBA_SY[s]; }
static inline int moba_struct_max(int s) { return s == 0 ? MOBA_BASE_HP : MOBA_TOWER_HP; }

static inline int moba_dist(int x0, int y0, int x1, int y1) {
    int dx = abs(x0 - x1), dy = abs(y0 - y1);
    return dx > dy ? dx : dy;
}

/* A base is protected while every tower of its team stands. */
static inline int moba_attackable(const Moba* env, int team, int s) {
    if (env->shp[team][s] <= 0) return 0;
    if (s > 0) return 1;
    return env->shp[team][1] <= 0 || env->shp[team][2] <= 0 || env->shp[team][3] <= 0;
}

static void moba_spawn(Moba* env, int h) {
    MobaHero* hero = &env->hero[h];
    int team = moba_team(env, h);
    int x = shoal_randint(&env->rng, 2), y = MOBA_SY[0] - 1 + shoal_randint(&env->rng, 3);
    hero->x = team ? MOBA_W - 1 - x : x;
    hero->y = team ? MOBA_H - 1 - y : y;
    hero->hp = MOBA_HERO_HP;
    hero->respawn = 0;
    hero->cooldown = 0;
    hero->retreat = 0;
}

/* seen[t][h]: hero h is alive, an enemy of team t, and within the vision of its structures or heroes. */
static void moba_vision(const Moba* env, int seats, uint8_t seen[2][MOBA_MAX_HEROES]) {
    const int T = env->team_size;
    for (int t = 0; t < seats; t++) {
        for (int h = 0; h < 2 * T; h++) {
            const MobaHero* e = &env->hero[h];
            int visible = 0;
            if (e->hp > 0 && moba_team(env, h) != t) {
                for (int s = 0; s < MOBA_STRUCTS && !visible; s++) {
                    visible = env->shp[t][s] > 0 &&
                              moba_dist(e->x, e->y, moba_sx(t, s), moba_sy(t, s)) <= MOBA_VISION;
                }
                for (int k = 0; k < T && !visible; k++) {
                    const MobaHero* a = &env->hero[t * T + k];
                    visible = a->hp > 0 && moba_dist(e->x, e->y, a->x, a->y) <= MOBA_VISION;
                }
            }
            seen[t][h] = (uint8_t)visible;
        }
    }
}

/* threat[t][s]: an enemy hero is alive within range of team t's structure s. The same for every hero of
 * team t, so it is found once per team and not once per hero. */
static void moba_threats(const Moba* env, int seats, uint8_t threat[2][MOBA_STRUCTS]) {
    const int T = env->team_size;
    for (int t = 0; t < seats; t++) {
        for (int s = 0; s < MOBA_STRUCTS; s++) {
            int flag = 0;
            for (int j = 0; j < T && !flag; j++) {
                const MobaHero* b = &env->hero[(1 - t) * T + j];
                flag = b->hp > 0 && moba_dist(moba_sx(t, s), moba_sy(t, s), b->x, b->y) <= MOBA_STRUCT_RANGE;
            }
            threat[t][s] = (uint8_t)flag;
        }
    }
}

/* Own structures, then the enemy's, relative to hero `me` of team t: alive, offset, health, and whether
 * an enemy hero threatens it (own, from `threat`) or `me` can hit it (enemy's). */
static void moba_observe_structs(const Moba* env, int t, const MobaHero* me, const uint8_t threat[MOBA_STRUCTS],
                                 float* st) {
    const float flip = t ? -1.0f : 1.0f, sx = 1.0f / (float)(MOBA_W - 1), sy = 1.0f / (float)(MOBA_H - 1);
    for (int side = 0; side < 2; side++) {
        const int owner = side ? 1 - t : t;
        for (int s = 0; s < MOBA_STRUCTS; s++, st += MOBA_OBS_STRUCT) {
            if (env->shp[owner][s] <= 0) continue;
            const int bx = moba_sx(owner, s), by = moba_sy(owner, s);
            st[0] = 1.0f;
            st[1] = flip * (float)(bx - me->x) * sx;
            st[2] = flip * (float)(by - me->y) * sy;
            st[3] = (float)env->shp[owner][s] / (float)moba_struct_max(s);
            const int flag = side ? me->hp > 0 && moba_attackable(env, owner, s) &&
                                        moba_dist(bx, by, me->x, me->y) <= MOBA_RANGE
                                  : threat[s];
            st[4] = (float)flag;
        }
    }
}

static void moba_observe_hero(Moba* env, int t, int k, uint8_t seen[2][MOBA_MAX_HEROES],
                              uint8_t threat[2][MOBA_STRUCTS]) {
    const int T = env->team_size, h = t * T + k;
    const float flip = t ? -1.0f : 1.0f; /* team 1 sees the map reflected */
    const float sx = 1.0f / (float)(MOBA_W - 1), sy = 1.0f / (float)(MOBA_H - 1);
    const MobaHero* me = &env->hero[h];
    float* o = env->observations + (size_t)h * MOBA_OBS;
    memset(o, 0, MOBA_OBS * sizeof(float));
    int x = t ? MOBA_W - 1 - me->x : me->x, y = t ? MOBA_H - 1 - me->y : me->y;
    o[0] = 2.0f * (float)x * sx - 1.0f;
    o[1] = 2.0f * (float)y * sy - 1.0f;
    o[2] = (float)me->hp / (float)MOBA_HERO_HP;
    o[3] = me->hp > 0 ? 1.0f : 0.0f;
    o[4] = (float)me->respawn / (float)MOBA_RESPAWN;
    o[5] = (float)me->cooldown / (float)MOBA_NOVA_COOLDOWN;
    o[6] = (float)env->tick / (float)env->max_steps;
    o[7 + k] = 1.0f;
    float* ally = o + MOBA_OBS_SELF;
    for (int j = 0; j < T; j++) {
        const MobaHero* a = &env->hero[t * T + j];
        if (j == k) continue;
        if (a->hp > 0) {
            ally[0] = 1.0f;
            ally[1] = flip * (float)(a->x - me->x) * sx;
            ally[2] = flip * (float)(a->y - me->y) * sy;
            ally[3] = (float)a->hp / (float)MOBA_HERO_HP;
        }
        ally += MOBA_OBS_ALLY;
    }
    float* enemy = o + MOBA_OBS_SELF + (MOBA_MAX_TEAM - 1) * MOBA_OBS_ALLY;
    for (int j = 0; j < T; j++) {
        const int e = (1 - t) * T + j;
        const MobaHero* b = &env->hero[e];
        if (seen[t][e]) {
            enemy[0] = 1.0f;
            enemy[1] = flip * (float)(b->x - me->x) * sx;
            enemy[2] = flip * (float)(b->y - me->y) * sy;
            enemy[3] = (float)b->hp / (float)MOBA_HERO_HP;
            enemy[4] = me->hp > 0 && moba_dist(b->x, b->y, me->x, me->y) <= MOBA_RANGE ? 1.0f : 0.0f;
        }
        enemy += MOBA_OBS_ENEMY;
    }
    moba_observe_structs(env, t, me, threat[t], o + MOBA_OBS - 2 * MOBA_STRUCTS * MOBA_OBS_STRUCT);
}

static void moba_observe(Moba* env) {
    const int seats = env->opponent ? 2 : 1;
    uint8_t seen[2][MOBA_MAX_HEROES], threat[2][MOBA_STRUCTS];
    moba_vision(env, seats, seen);
    moba_threats(env, seats, threat);
    for (int t = 0; t < seats; t++) {
        for (int k = 0; k < env->team_size; k++) moba_observe_hero(env, t, k, seen, threat);
    }
}

static void moba_reset(Moba* env) {
    for (int h = 0; h < 2 * env->team_size; h++) moba_spawn(env, h);
    for (int t = 0; t < 2; t++) {
        for (int s = 0; s < MOBA_STRUCTS; s++) env->shp[t][s] = moba_struct_max(s);
    }
    env->tick = 0;
    env->episode_return = 0.0f;
    env->kills = env->deaths = env->invalid_actions = 0.0f;
    moba_observe(env);
}

static void moba_init(Moba* env) {
    env->opponent = shoal_clampi(env->opponent, 0, 1);
    env->team_size = shoal_clampi(env->team_size, 3, MOBA_MAX_TEAM);
    env->bot = shoal_clampi(env->bot, 0, 2);
    env->max_steps = shoal_clampi(env->max_steps, 50, 100000);
    float* coefs[] = {&env->reward_win, &env->reward_kill, &env->reward_death, &env->reward_damage,
                      &env->reward_objective};
    for (int i = 0; i < 5; i++) *coefs[i] = isnan(*coefs[i]) ? 0.0f : shoal_clampf(*coefs[i], -100.0f, 100.0f);
    moba_reset(env);
}

/* World direction from a seat's move: team 1's view is reflected, so its up is down and forward is left. */
static inline int moba_world_move(int team, int move) {
    static const int reflect[MOBA_MOVES] = {MOBA_STAY, MOBA_DOWN, MOBA_UP, MOBA_FORWARD, MOBA_BACK};
    return team ? reflect[move] : move;
}

/* The seat-relative move that brings hero h one cell closer to (tx, ty), the longer axis first. */
static int moba_toward(const Moba* env, int h, int tx, int ty) {
    const MobaHero* me = &env->hero[h];
    int dx = tx - me->x, dy = ty - me->y, world;
    if (dx == 0 && dy == 0) return MOBA_STAY;
    if (abs(dx) >= abs(dy)) world = dx > 0 ? MOBA_FORWARD : MOBA_BACK;
    else world = dy > 0 ? MOBA_DOWN : MOBA_UP;
    return moba_world_move(moba_team(env, h), world);
}

/* The enemy hero nearest to (x, y) within `range`, or -1. */
static int moba_nearest_enemy(const Moba* env, int team, int x, int y, int range) {
    int best = -1, best_d = range + 1;
    for (int e = (1 - team) * env->team_size; e < (2 - team) * env->team_size; e++) {
        const MobaHero* b = &env->hero[e];
        int d = moba_dist(b->x, b->y, x, y);
        if (b->hp > 0 && d < best_d) best = e, best_d = d;
    }
    return best;
}

/* Where the bots of `team` push: the weakest standing enemy tower, or the base once it can be hit. */
static int moba_push_target(const Moba* env, int team, int lane) {
    const int enemy = 1 - team;
    if (lane >= 0) return env->shp[enemy][1 + lane] > 0 ? 1 + lane : 0;
    int best = 0;
    for (int s = 1; s < MOBA_STRUCTS; s++) {
        if (env->shp[enemy][s] > 0 && (best == 0 || env->shp[enemy][s] < env->shp[enemy][best])) best = s;
    }
    return best;
}

/* The scripted bots, writing hero h's seat-relative action into out[0..1].
 * 0: each hero walks its own lane to the enemy tower, then the base, hitting whatever is in range; it never
 *    retreats nor casts nova, and wanders now and then.
 * 1: the same lanes, plus nova when an enemy is close, chasing weaker heroes nearby and retreating to heal.
 * 2: the whole team pushes one lane together (the weakest enemy tower), waits for the group before entering
 *    tower range, defends its own structures, focuses the weakest hero, casts nova and retreats to heal. */
/* The strongest bot's first duties: move to an enemy near one of its structures, or chase a weaker enemy
 * hero that is close. 1 when one of them decided the move. */
static int moba_bot_defend(Moba* env, int h, int32_t* out) {
    const MobaHero* me = &env->hero[h];
    const int team = moba_team(env, h);
    for (int s = 0; s < MOBA_STRUCTS; s++) {
        if (env->shp[team][s] <= 0 || moba_dist(me->x, me->y, moba_sx(team, s), moba_sy(team, s)) > 8) continue;
        int e = moba_nearest_enemy(env, team, moba_sx(team, s), moba_sy(team, s), MOBA_STRUCT_RANGE + 2);
        if (e >= 0) {
            out[0] = moba_toward(env, h, env->hero[e].x, env->hero[e].y);
            return 1;
        }
    }
    int e = moba_nearest_enemy(env, team, me->x, me->y, MOBA_RANGE + 1);
    if (e >= 0 && env->hero[e].hp <= me->hp) {
        if (moba_dist(env->hero[e].x, env->hero[e].y, me->x, me->y) > MOBA_RANGE)
            out[0] = moba_toward(env, h, env->hero[e].x, env->hero[e].y);
        return 1;
    }
    return 0;
}

/* Rally just outside the range of the target at (tx, ty) until most of the living team is there; 1 while
 * rallying. */
static int moba_bot_rally(Moba* env, int h, int tx, int ty, int32_t* out) {
    const int team = moba_team(env, h), T = env->team_size;
    int alive = 0, near = 0;
    const int fx = tx + (team ? 1 : -1) * (MOBA_STRUCT_RANGE + 2);
    for (int k = 0; k < T; k++) {
        const MobaHero* a = &env->hero[team * T + k];
        if (a->hp <= 0) continue;
        alive++;
        near += moba_dist(a->x, a->y, fx, ty) <= MOBA_STRUCT_RANGE + 2;
    }
    if (2 * near < alive + 1 || alive * 2 < T) {
        out[0] = moba_toward(env, h, fx, ty);
        return 1;
    }
    return 0;
}

static void moba_bot(Moba* env, int h, int level, int32_t* out) {
    MobaHero* me = &env->hero[h];
    const int team = moba_team(env, h), T = env->team_size, slot = h - team * T;
    out[0] = MOBA_STAY;
    out[1] = MOBA_NONE;
    if (me->hp <= 0) return;
    const int close = moba_nearest_enemy(env, team, me->x, me->y, MOBA_NOVA_RADIUS);
    if (level >= 1 && close >= 0 && me->cooldown == 0) out[1] = MOBA_NOVA;
    else if (level == 0 || (level == 2 && close >= 0 && env->hero[close].hp <= 3 * MOBA_HERO_DMG)) out[1] = MOBA_HIT_HEROES;
    else out[1] = MOBA_HIT_STRUCTS;

    const int home_x = moba_sx(team, 0), home_y = moba_sy(team, 0);
    if (level >= 1) {
        int low = level == 2 ? 30 : 35;
        if (me->hp < low) me->retreat = 1;
        if (me->retreat && me->hp >= 90) me->retreat = 0;
        if (me->retreat) {
            out[0] = moba_toward(env, h, home_x, home_y);
            return;
        }
    }
    if (level == 0 && shoal_randint(&env->rng, 5) == 0) {
        out[0] = shoal_randint(&env->rng, MOBA_MOVES);
        return;
    }
    if (level == 2 && moba_bot_defend(env, h, out)) return;
    const int enemy = 1 - team;
    const int s = moba_push_target(env, team, level == 2 ? -1 : (slot + 1) % 3);
    const int tx = moba_sx(enemy, s), ty = moba_sy(enemy, s);
    if (level == 2 && moba_bot_rally(env, h, tx, ty, out)) return;
    if (moba_dist(me->x, me->y, tx, ty) > (level == 0 ? 1 : MOBA_RANGE)) out[0] = moba_toward(env, h, tx, ty);
}

/* Hero h's attack target: the lowest-hp enemy hero in range, or the attackable enemy structure in range with
 * the lowest hp; `structs_first` swaps the preference. Returns a hero index, MOBA_MAX_HEROES + s for
 * structure s, or -1. */
static int moba_target(const Moba* env, int h, int structs_first) {
    const MobaHero* me = &env->hero[h];
    const int team = moba_team(env, h), enemy = 1 - team, T = env->team_size;
    int hero = -1, hero_hp = 1 << 30, st = -1, st_hp = 1 << 30;
    for (int e = enemy * T; e < (enemy + 1) * T; e++) {
        const MobaHero* b = &env->hero[e];
        if (b->hp > 0 && b->hp < hero_hp && moba_dist(b->x, b->y, me->x, me->y) <= MOBA_RANGE) hero = e, hero_hp = b->hp;
    }
    for (int s = 0; s < MOBA_STRUCTS; s++) {
        if (moba_attackable(env, enemy, s) && env->shp[enemy][s] < st_hp &&
            moba_dist(moba_sx(enemy, s), moba_sy(enemy, s), me->x, me->y) <= MOBA_RANGE) {
            st = s, st_hp = env->shp[enemy][s];
        }
    }
    const int as_struct = st >= 0 ? MOBA_MAX_HEROES + st : -1;
    if (structs_first) return as_struct >= 0 ? as_struct : hero;
    return hero >= 0 ? hero : as_struct;
}

static void moba_end(Moba* env, float result, float* reward) {
    const int T = env->team_size;
    for (int h = 0; h < 2 * T; h++) {
        float r = env->reward_win * (2.0f * result - 1.0f);
        reward[h] += moba_team(env, h) ? -r : r;
    }
    float score = 0.0f;
    for (int s = 0; s < MOBA_STRUCTS; s++) score += env->shp[1][s] <= 0 ? 1.0f : 0.0f;
    for (int k = 0; k < T; k++) env->episode_return += reward[k];
    SHOAL_LOG_GAME(env->log, result, score, env->episode_return / (float)T, (float)env->tick);
    env->log.kills += env->kills;
    env->log.deaths += env->deaths;
    env->log.invalid_actions += env->invalid_actions;
}

/* One tick's effects, gathered before any applies, so that the order of heroes never matters. */
typedef struct {
    float reward[MOBA_MAX_HEROES];
    int damage[MOBA_MAX_HEROES];
    int killer[MOBA_MAX_HEROES];
    int sdamage[2][MOBA_STRUCTS];
} MobaTick;

static void moba_read_actions(Moba* env, int32_t act[MOBA_MAX_HEROES][2]) {
    const int T = env->team_size;
    for (int h = 0; h < 2 * T; h++) {
        if (h < T || env->opponent) {
            const int32_t* a = env->actions + 2 * h;
            act[h][0] = shoal_discrete(a[0], MOBA_MOVES, &env->invalid_actions);
            act[h][1] = shoal_discrete(a[1], MOBA_ACTS, &env->invalid_actions);
        } else {
            moba_bot(env, h, env->bot, act[h]);
        }
    }
}

static void moba_move(Moba* env, int32_t act[MOBA_MAX_HEROES][2]) {
    static const int DX[MOBA_MOVES] = {0, 0, 0, -1, 1};
    static const int DY[MOBA_MOVES] = {0, -1, 1, 0, 0};
    for (int h = 0; h < 2 * env->team_size; h++) {
        MobaHero* me = &env->hero[h];
        if (me->hp <= 0) {
            if (--me->respawn <= 0) moba_spawn(env, h);
            continue;
        }
        int move = moba_world_move(moba_team(env, h), act[h][0]);
        me->x = shoal_clampi(me->x + DX[move], 0, MOBA_W - 1);
        me->y = shoal_clampi(me->y + DY[move], 0, MOBA_H - 1);
    }
}

/* Every attack is chosen on the positions after moving and lands at once; the lowest-index attacker gets
 * the credit of a kill. */
static void moba_attack(Moba* env, int32_t act[MOBA_MAX_HEROES][2], MobaTick* tick) {
    const int T = env->team_size;
    for (int h = 0; h < 2 * T; h++) {
        MobaHero* me = &env->hero[h];
        if (me->hp <= 0 || act[h][1] == MOBA_NONE) continue;
        const int team = moba_team(env, h), enemy = 1 - team;
        if (act[h][1] == MOBA_NOVA) {
            if (me->cooldown > 0) continue;
            me->cooldown = MOBA_NOVA_COOLDOWN;
            for (int e = enemy * T; e < (enemy + 1) * T; e++) {
                const MobaHero* b = &env->hero[e];
                if (b->hp > 0 && moba_dist(b->x, b->y, me->x, me->y) <= MOBA_NOVA_RADIUS) {
                    tick->damage[e] += MOBA_NOVA_DMG;
                    tick->reward[h] += env->reward_damage * (float)MOBA_NOVA_DMG / (float)MOBA_HERO_HP;
                    if (tick->killer[e] < 0) tick->killer[e] = h;
                }
            }
            continue;
        }
        int target = moba_target(env, h, act[h][1] == MOBA_HIT_STRUCTS);
        if (target < 0) continue;
        if (target >= MOBA_MAX_HEROES) {
            const int s = target - MOBA_MAX_HEROES;
            tick->sdamage[enemy][s] += MOBA_HERO_DMG;
            tick->reward[h] += env->reward_objective * (float)MOBA_HERO_DMG / (float)moba_struct_max(s);
        } else {
            tick->damage[target] += MOBA_HERO_DMG;
            tick->reward[h] += env->reward_damage * (float)MOBA_HERO_DMG / (float)MOBA_HERO_HP;
            if (tick->killer[target] < 0) tick->killer[target] = h;
        }
    }
    for (int t = 0; t < 2; t++) {
        for (int s = 0; s < MOBA_STRUCTS; s++) {
            if (env->shp[t][s] <= 0) continue;
            int e = moba_nearest_enemy(env, t, moba_sx(t, s), moba_sy(t, s), MOBA_STRUCT_RANGE);
            if (e >= 0) tick->damage[e] += MOBA_STRUCT_DMG;
        }
    }
}

static void moba_apply(Moba* env, MobaTick* tick) {
    const int T = env->team_size;
    for (int h = 0; h < 2 * T; h++) {
        MobaHero* me = &env->hero[h];
        if (me->hp <= 0) continue;
        me->hp -= tick->damage[h];
        if (me->cooldown > 0) me->cooldown--;
        if (me->hp <= 0) {
            me->hp = 0;
            me->respawn = MOBA_RESPAWN;
            tick->reward[h] += env->reward_death;
            if (tick->killer[h] >= 0) tick->reward[tick->killer[h]] += env->reward_kill;
            if (h < T) env->deaths += 1.0f;
            else if (tick->killer[h] >= 0) env->kills += 1.0f;
            continue;
        }
        const int team = moba_team(env, h);
        if (moba_dist(me->x, me->y, moba_sx(team, 0), moba_sy(team, 0)) <= MOBA_FOUNTAIN) {
            me->hp = me->hp + MOBA_HEAL > MOBA_HERO_HP ? MOBA_HERO_HP : me->hp + MOBA_HEAL;
        }
    }
    for (int t = 0; t < 2; t++) {
        for (int s = 0; s < MOBA_STRUCTS; s++) {
            const int hit = tick->sdamage[t][s];
            env->shp[t][s] = env->shp[t][s] > hit ? env->shp[t][s] - hit : 0;
        }
    }
}

/* 1 team 0 won, 0 lost, 0.5 a draw, -1 not decided yet. */
static float moba_result(const Moba* env) {
    if (env->shp[0][0] <= 0 || env->shp[1][0] <= 0) {
        return env->shp[1][0] <= 0 ? (env->shp[0][0] <= 0 ? 0.5f : 1.0f) : 0.0f;
    }
    if (env->tick < env->max_steps) return -1.0f;
    /* Structure health left, as fractions of each structure's full health. */
    int left[2];
    for (int t = 0; t < 2; t++) {
        left[t] = env->shp[t][0] * MOBA_TOWER_HP;
        for (int s = 1; s < MOBA_STRUCTS; s++) left[t] += env->shp[t][s] * MOBA_BASE_HP;
    }
    return left[0] > left[1] ? 1.0f : (left[0] < left[1] ? 0.0f : 0.5f);
}

static void moba_step(Moba* env) {
    int32_t act[MOBA_MAX_HEROES][2];
    MobaTick tick;
    memset(&tick, 0, sizeof tick);
    for (int h = 0; h < MOBA_MAX_HEROES; h++) tick.killer[h] = -1;
    moba_read_actions(env, act);
    moba_move(env, act);
    moba_attack(env, act, &tick);
    moba_apply(env, &tick);
    env->tick += 1;

    const float result = moba_result(env);
    const int done = result >= 0.0f;
    if (done) moba_end(env, result, tick.reward);
    else for (int k = 0; k < env->team_size; k++) env->episode_return += tick.reward[k];
    const int rows = moba_num_agents(env);
    for (int h = 0; h < rows; h++) SHOAL_STEP_RESULT(env, h, tick.reward[h], done, 0);
    if (done) moba_reset(env);
    else moba_observe(env);
}

static void moba_fill(uint8_t* rgb, int x0, int y0, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    shoal_fill_rect(rgb, MOBA_RENDER_W, MOBA_RENDER_H, x0, y0, w, h, r, g, b);
}

static void moba_render(Moba* env, uint8_t* rgb) {
    static const uint8_t color[2][3] = {{70, 140, 255}, {255, 90, 70}};
    const int C = MOBA_CELL;
    moba_fill(rgb, 0, 0, MOBA_RENDER_W, MOBA_RENDER_H, 24, 40, 24);
    for (int s = 1; s < MOBA_STRUCTS; s++) { /* lanes */
        moba_fill(rgb, 0, MOBA_SY[s] * C + C / 2 - 1, MOBA_RENDER_W, 2, 60, 70, 50);
    }
    for (int t = 0; t < 2; t++) {
        const uint8_t* c = color[t];
        for (int s = 0; s < MOBA_STRUCTS; s++) {
            if (env->shp[t][s] <= 0) continue;
            int x = moba_sx(t, s) * C, y = moba_sy(t, s) * C;
            moba_fill(rgb, x, y, C, C, c[0] / 2, c[1] / 2, c[2] / 2);
            moba_fill(rgb, x, y + C - 2, C * env->shp[t][s] / moba_struct_max(s), 2, 250, 250, 250);
        }
    }
    for (int h = 0; h < 2 * env->team_size; h++) {
        const MobaHero* me = &env->hero[h];
        if (me->hp <= 0) continue;
        const uint8_t* c = color[moba_team(env, h)];
        moba_fill(rgb, me->x * C + 2, me->y * C + 1, C - 4, C - 4, c[0], c[1], c[2]);
        moba_fill(rgb, me->x * C + 1, me->y * C + C - 2, (C - 2) * me->hp / MOBA_HERO_HP, 1, 80, 230, 80);
    }
    int bar = MOBA_RENDER_W * env->tick / env->max_steps;
    moba_fill(rgb, 0, MOBA_H * C + 3, bar, 2, 200, 200, 200);
}

static void moba_close(Moba* env) { (void)env; }

/* The strongest bot's action for every agent of the environment. */
static void moba_scripted(Moba* env, int32_t* out) {
    for (int h = 0; h < moba_num_agents(env); h++) moba_bot(env, h, 2, out + 2 * h);
}

SHOAL_VECTOR(moba, Moba, float, int32_t, 2)

#endif
