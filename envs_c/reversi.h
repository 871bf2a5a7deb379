/* Reversi (Othello) on an 8x8 bitboard, with a positional bot.
 *
 * A move must flank a line of the opponent's discs, which then flip. A side with no legal move passes
 * (inside the step, automatically); the game ends when neither side can move. Strategy has real depth:
 * corners are stable, squares next to them give corners away, and mobility matters more than disc count.
 * With opponent = 0 the agent is seat 0 (black, moves first) and the bot replies within the step: it picks
 * the move that maximises a corner-weighted square table after the move, ties at random. With opponent = 1
 * both seats read the action buffer (agents 2i, 2i+1); only the seat to move is read, and the first move
 * alternates between games.
 * Observation per seat (129 values): 64 cells (+1 own, -1 other, 0 empty), 64 flags for this seat's legal
 * moves (zero when it is not its turn), then 1 if it is this seat's turn.
 * Action: a square 0..63 (row * 8 + col); an illegal square is counted invalid and replaced by the nearest
 * legal one in index order. Reward per seat at the end: +1 win, -1 loss, 0 draw (zero-sum).
 * perf (seat 0's view) = 1 win, 0.5 draw, 0 loss. score = seat 0's discs minus seat 1's.
 */
#ifndef SHOAL_REVERSI_H
#define SHOAL_REVERSI_H

#include "board.h"

#define REVERSI_CELLS 64
#define REVERSI_OBS (2 * REVERSI_CELLS + 1)
#define REVERSI_RENDER_W 192
#define REVERSI_RENDER_H 192

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, BoardLog)
    int opponent;
    uint64_t discs[2];
    int to_move;
    int games;
    int tick;
    float episode_return;
    float invalid_actions;
} Reversi;

SHOAL_SIZES(reversi, Reversi, env->opponent ? 2 : 1, REVERSI_OBS)

static const uint64_t RV_NOT_A = 0xFEFEFEFEFEFEFEFEULL; /* clears column 0 after a shift toward it */
static const uint64_t RV_NOT_H = 0x7F7F7F7F7F7F7F7FULL;

/* Shift every disc one square in direction d (0..7), dropping those that leave the board. */
static inline uint64_t rv_shift(uint64_t b, int d) {
    switch (d) {
        case 0: return (b << 1) & RV_NOT_A;   /* east */
        case 1: return (b >> 1) & RV_NOT_H;   /* west */
        case 2: return b << 8;                /* south */
        case 3: return b >> 8;                /* north */
        case 4: return (b << 9) & RV_NOT_A;   /* south-east */
        case 5: return (b << 7) & RV_NOT_H;   /* south-west */
        case 6: return (b >> 7) & RV_NOT_A;   /* north-east */
        default: return (b >> 9) & RV_NOT_H;  /* north-west */
    }
}

static inline uint64_t rv_moves(uint64_t me, uint64_t opp) {
    uint64_t empty = ~(me | opp), moves = 0;
    for (int d = 0; d < 8; d++) {
        uint64_t x = rv_shift(me, d) & opp;
        for (int k = 0; k < 5; k++) x |= rv_shift(x, d) & opp;
        moves |= rv_shift(x, d) & empty;
    }
    return moves;
}

static inline uint64_t rv_flips(uint64_t me, uint64_t opp, uint64_t move) {
    uint64_t flips = 0;
    for (int d = 0; d < 8; d++) {
        uint64_t line = 0, x = rv_shift(move, d);
        while (x & opp) {
            line |= x;
            x = rv_shift(x, d);
        }
        if (x & me) flips |= line;
    }
    return flips;
}

/* Corners high, the squares that hand corners over low: the classic positional table. */
static const int RV_WEIGHTS[REVERSI_CELLS] = {
    100, -20, 10, 5, 5, 10, -20, 100,
    -20, -50, -2, -2, -2, -2, -50, -20,
    10, -2, 1, 1, 1, 1, -2, 10,
    5, -2, 1, 0, 0, 1, -2, 5,
    5, -2, 1, 0, 0, 1, -2, 5,
    10, -2, 1, 1, 1, 1, -2, 10,
    -20, -50, -2, -2, -2, -2, -50, -20,
    100, -20, 10, 5, 5, 10, -20, 100,
};

static int rv_positional(uint64_t me, uint64_t opp) {
    int score = 0;
    while (me) {
        score += RV_WEIGHTS[__builtin_ctzll(me)];
        me &= me - 1;
    }
    while (opp) {
        score -= RV_WEIGHTS[__builtin_ctzll(opp)];
        opp &= opp - 1;
    }
    return score;
}

/* Positional score after a move, from the mover's side. */
static inline int rv_after(uint64_t me, uint64_t opp, int sq) {
    uint64_t move = 1ULL << sq, f = rv_flips(me, opp, move);
    return rv_positional(me | move | f, opp & ~f);
}

/* The bot: one ply, best table score, ties at random. */
static int rv_bot(uint64_t me, uint64_t opp, uint64_t* rng) {
    uint64_t moves = rv_moves(me, opp);
    int best = -1000000, choice = -1, ties = 0;
    while (moves) {
        int sq = __builtin_ctzll(moves);
        moves &= moves - 1;
        int v = rv_after(me, opp, sq);
        if (v > best) {
            best = v;
            choice = sq;
            ties = 1;
        } else if (v == best) {
            ties += 1;
            if (shoal_randint(rng, ties) == 0) choice = sq;
        }
    }
    return choice;
}

/* Scripted: two plies (the move whose worst reply leaves the best table score, with mobility), no rng. */
static int rv_two_ply(uint64_t me, uint64_t opp) {
    uint64_t moves = rv_moves(me, opp);
    int best = -10000000, choice = -1;
    while (moves) {
        int sq = __builtin_ctzll(moves);
        moves &= moves - 1;
        uint64_t move = 1ULL << sq, f = rv_flips(me, opp, move);
        uint64_t m2 = me | move | f, o2 = opp & ~f;
        uint64_t replies = rv_moves(o2, m2);
        int worst = 10000000;
        if (!replies) worst = rv_positional(m2, o2) + 50;
        while (replies) {
            int r = __builtin_ctzll(replies);
            replies &= replies - 1;
            uint64_t rm = 1ULL << r, rf = rv_flips(o2, m2, rm);
            uint64_t m3 = m2 & ~rf, o3 = o2 | rm | rf;
            int v = rv_positional(m3, o3) + 5 * (__builtin_popcountll(rv_moves(m3, o3)) -
                                                 __builtin_popcountll(rv_moves(o3, m3)));
            if (v < worst) worst = v;
        }
        if (worst > best) {
            best = worst;
            choice = sq;
        }
    }
    return choice;
}

static void reversi_observe(Reversi* env) {
    for (int s = 0; s < reversi_num_agents(env); s++) {
        float* o = env->observations + s * REVERSI_OBS;
        uint64_t mine = env->discs[s], theirs = env->discs[1 - s];
        uint64_t legal = env->to_move == s ? rv_moves(mine, theirs) : 0;
        for (int i = 0; i < REVERSI_CELLS; i++) {
            o[i] = (float)((mine >> i) & 1) - (float)((theirs >> i) & 1);
            o[REVERSI_CELLS + i] = (float)((legal >> i) & 1);
        }
        o[2 * REVERSI_CELLS] = (float)(env->to_move == s);
    }
}

static void reversi_reset(Reversi* env) {
    /* Standard start: d5/e4 for black (seat 0), d4/e5 for white. */
    env->discs[0] = (1ULL << 28) | (1ULL << 35);
    env->discs[1] = (1ULL << 27) | (1ULL << 36);
    env->to_move = env->opponent ? (env->games & 1) : 0;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    reversi_observe(env);
}

static void reversi_init(Reversi* env) {
    env->opponent = shoal_clampi(env->opponent, 0, 1);
    env->games = 0;
    reversi_reset(env);
}

/* Play square sq for the side to move, then hand the turn on (passing if needed). Returns 1 at game end. */
static int rv_play(Reversi* env, int sq) {
    int s = env->to_move;
    uint64_t move = 1ULL << sq, f = rv_flips(env->discs[s], env->discs[1 - s], move);
    env->discs[s] |= move | f;
    env->discs[1 - s] &= ~f;
    if (rv_moves(env->discs[1 - s], env->discs[s])) {
        env->to_move = 1 - s;
        return 0;
    }
    return rv_moves(env->discs[s], env->discs[1 - s]) ? 0 : 1; /* opponent passes, or nobody can move */
}

static void reversi_step(Reversi* env) {
    int s = env->to_move;
    uint64_t legal = rv_moves(env->discs[s], env->discs[1 - s]);
    int32_t raw = env->actions[env->opponent ? s : 0];
    int done = 0;
    if (legal) {
        int sq = shoal_legal(raw, legal, REVERSI_CELLS, &env->invalid_actions);
        done = rv_play(env, sq);
    } else {
        done = 1; /* unreachable: rv_play never leaves a side to move without moves */
    }
    if (!env->opponent) {
        /* The bot moves until the agent has a move again or the game ends. */
        while (!done && env->to_move == 1) done = rv_play(env, rv_bot(env->discs[1], env->discs[0], &env->rng));
    }
    env->tick += 1;
    int n0 = __builtin_popcountll(env->discs[0]), n1 = __builtin_popcountll(env->discs[1]);
    float r0 = done ? (n0 > n1 ? 1.0f : (n0 < n1 ? -1.0f : 0.0f)) : 0.0f;
    float result = n0 > n1 ? 1.0f : (n0 == n1 ? 0.5f : 0.0f);
    SHOAL_BOARD_STEP_END(reversi, env, r0, done, result, (float)(n0 - n1));
}

static void reversi_render(Reversi* env, uint8_t* rgb) {
    const int cell = REVERSI_RENDER_W / 8;
    for (int y = 0; y < REVERSI_RENDER_H; y++) {
        for (int x = 0; x < REVERSI_RENDER_W; x++) {
            uint8_t* p = rgb + ((size_t)y * REVERSI_RENDER_W + x) * 3;
            int sq = (y / cell) * 8 + x / cell;
            int dx = x % cell - cell / 2, dy = y % cell - cell / 2;
            p[0] = 20; p[1] = 120; p[2] = 50;
            if (x % cell == 0 || y % cell == 0) { p[0] = p[1] = p[2] = 10; continue; }
            if (dx * dx + dy * dy > 9 * 9) continue;
            if ((env->discs[0] >> sq) & 1) { p[0] = p[1] = p[2] = 15; }
            else if ((env->discs[1] >> sq) & 1) { p[0] = p[1] = p[2] = 240; }
        }
    }
}

static void reversi_close(Reversi* env) { (void)env; }

static void reversi_scripted(Reversi* env, int32_t* out) {
    int s = env->to_move;
    int sq = rv_two_ply(env->discs[s], env->discs[1 - s]);
    for (int k = 0; k < reversi_num_agents(env); k++) out[k] = k == s && sq >= 0 ? sq : 0;
}

SHOAL_VECTOR(reversi, Reversi, float, int32_t, 1)

#endif
