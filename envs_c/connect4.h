/* Connect Four on bitboards, with a negamax (alpha-beta) bot.
 *
 * With opponent = 0 the agent is seat 0 and moves first; the bot answers inside the same step with a
 * depth-`depth` search. With opponent = 1 both seats read the action buffer (agents 2i, 2i+1) and only the
 * seat to move is read; first move alternates between games so neither seat keeps the advantage.
 * Observation per seat: 42 cells row-major from the top (+1 own, -1 other, 0 empty), then 1 if it is this
 * seat's turn. Action: a column 0..6; a full column is counted invalid and replaced by the nearest open one.
 * Reward per seat at the end: +1 win, -1 loss, 0 draw (zero-sum).
 * perf (seat 0's view) = 1 win, 0.5 draw, 0 loss: the win rate against the bot, or seat 0's in self-play.
 *
 * Bitboard layout: bit col*7 + row (row 0 at the bottom); the 7th bit of each column is a sentinel so
 * line checks by shifting never wrap between columns.
 */
#ifndef SHOAL_CONNECT4_H
#define SHOAL_CONNECT4_H

#include "board.h"

#define C4_ROWS 6
#define C4_COLS 7
#define C4_CELLS (C4_ROWS * C4_COLS)
#define C4_OBS (C4_CELLS + 1)
#define C4_RENDER_W 224
#define C4_RENDER_H 192
#define CONNECT4_RENDER_W C4_RENDER_W
#define CONNECT4_RENDER_H C4_RENDER_H
#define C4_WIN_SCORE 100000

typedef struct {
    SHOAL_ENV_FIELDS(float, int32_t, BoardLog)
    int opponent;
    int depth;
    uint64_t stones[2]; /* per seat */
    int to_move;
    int first;         /* seat that moved first in this game */
    int games;
    int plies;
    int tick;
    float episode_return;
    float invalid_actions;
} Connect4;

SHOAL_SIZES(connect4, Connect4, env->opponent ? 2 : 1, C4_OBS)

static const uint64_t C4_BOTTOM = 0x0040810204081ULL; /* bit 0 of every column */
static const uint64_t C4_BOARD = 0x0040810204081ULL * 0x3FULL; /* the 42 playable bits */

static inline uint64_t c4_column(int c) { return 0x3FULL << (7 * c); }
static inline uint64_t c4_top(int c) { return 1ULL << (7 * c + 5); }

static inline int c4_wins(uint64_t b) {
    static const int shifts[4] = {1, 7, 6, 8};
    for (int k = 0; k < 4; k++) {
        uint64_t m = b & (b >> shifts[k]);
        if (m & (m >> (2 * shifts[k]))) return 1;
    }
    return 0;
}

/* Bit of the stone a move in column c lands on, or 0 if the column is full. */
static inline uint64_t c4_drop(uint64_t mask, int c) {
    if (mask & c4_top(c)) return 0;
    return (mask + (1ULL << (7 * c))) & c4_column(c);
}

static inline uint64_t c4_legal(uint64_t mask) {
    uint64_t legal = 0;
    for (int c = 0; c < C4_COLS; c++) legal |= (uint64_t)((mask & c4_top(c)) == 0) << c;
    return legal;
}

/* Empty cells that would complete four for stones `b` (John Tromp / Pascal Pons' bitboard trick): a few
 * shifts per direction instead of a loop over the 69 four-cell windows. */
static inline uint64_t c4_threats(uint64_t b, uint64_t mask) {
    uint64_t r = (b << 1) & (b << 2) & (b << 3); /* vertical: three below an empty cell */
    static const int shifts[3] = {7, 6, 8};      /* horizontal and both diagonals */
    for (int k = 0; k < 3; k++) {
        int s = shifts[k];
        uint64_t p = (b << s) & (b << (2 * s));
        r |= p & (b << (3 * s));
        r |= p & (b >> s);
        p = (b >> s) & (b >> (2 * s));
        r |= p & (b << s);
        r |= p & (b >> (3 * s));
    }
    return r & (C4_BOARD ^ mask);
}

/* Cells where a stone can be dropped now. */
static inline uint64_t c4_playable(uint64_t mask) { return (mask + C4_BOTTOM) & C4_BOARD; }

/* Leaf evaluation for the side to move: open threats (cells that would complete four) count most, and
 * stones in the centre column, which take part in the most lines, break ties. */
static inline int c4_evaluate(uint64_t me, uint64_t opp) {
    uint64_t mask = me | opp;
    int threats = __builtin_popcountll(c4_threats(me, mask)) - __builtin_popcountll(c4_threats(opp, mask));
    int centre = __builtin_popcountll(me & c4_column(3)) - __builtin_popcountll(opp & c4_column(3));
    return 16 * threats + 3 * centre;
}

/* Score for the side to move (`me`), searching `depth` plies. */
static int c4_negamax(uint64_t me, uint64_t opp, int depth, int alpha, int beta) {
    uint64_t mask = me | opp;
    if ((mask & C4_BOARD) == C4_BOARD) return 0;
    if (c4_threats(me, mask) & c4_playable(mask)) return C4_WIN_SCORE + depth; /* sooner wins score higher */
    if (depth == 0) return c4_evaluate(me, opp);
    static const int order[C4_COLS] = {3, 2, 4, 1, 5, 0, 6};
    int best = -2 * C4_WIN_SCORE;
    for (int k = 0; k < C4_COLS; k++) {
        uint64_t bit = c4_drop(mask, order[k]);
        if (!bit) continue;
        int v = -c4_negamax(opp, me | bit, depth - 1, -beta, -alpha);
        if (v > best) best = v;
        if (v > alpha) alpha = v;
        if (alpha >= beta) break;
    }
    return best;
}

/* Best column for the side to move; ties broken at random when rng is given, else toward the centre. */
static int c4_search(uint64_t me, uint64_t opp, int depth, uint64_t* rng) {
    static const int order[C4_COLS] = {3, 2, 4, 1, 5, 0, 6};
    uint64_t mask = me | opp;
    int best = -3 * C4_WIN_SCORE, choice = -1, ties = 0;
    for (int k = 0; k < C4_COLS; k++) {
        int c = order[k];
        uint64_t bit = c4_drop(mask, c);
        if (!bit) continue;
        int v = c4_wins(me | bit) ? C4_WIN_SCORE + depth
                                  : -c4_negamax(opp, me | bit, depth - 1, -3 * C4_WIN_SCORE, 3 * C4_WIN_SCORE);
        if (v > best) {
            best = v;
            choice = c;
            ties = 1;
        } else if (v == best && rng != NULL) {
            ties += 1;
            if (shoal_randint(rng, ties) == 0) choice = c;
        }
    }
    return choice < 0 ? 0 : choice;
}

static void connect4_observe(Connect4* env) {
    for (int s = 0; s < connect4_num_agents(env); s++) {
        float* o = env->observations + s * C4_OBS;
        uint64_t mine = env->stones[s], theirs = env->stones[1 - s];
        for (int r = 0; r < C4_ROWS; r++) {
            for (int c = 0; c < C4_COLS; c++) {
                int bit = 7 * c + (C4_ROWS - 1 - r);
                o[r * C4_COLS + c] = (float)((mine >> bit) & 1) - (float)((theirs >> bit) & 1);
            }
        }
        o[C4_CELLS] = (float)(env->to_move == s);
    }
}

static void connect4_reset(Connect4* env) {
    env->stones[0] = env->stones[1] = 0;
    env->first = env->opponent ? (env->games & 1) : 0;
    env->to_move = env->first;
    env->plies = 0;
    env->tick = 0;
    env->episode_return = 0.0f;
    env->invalid_actions = 0.0f;
    connect4_observe(env);
}

static void connect4_init(Connect4* env) {
    env->opponent = shoal_clampi(env->opponent, 0, 1);
    env->depth = shoal_clampi(env->depth, 1, 8);
    env->games = 0;
    connect4_reset(env);
}

/* Play column c for the side to move; returns 1 win, 0 continue, 2 draw. */
static int c4_play(Connect4* env, int c) {
    int s = env->to_move;
    uint64_t mask = env->stones[0] | env->stones[1];
    env->stones[s] |= c4_drop(mask, c);
    env->plies += 1;
    env->to_move = 1 - s;
    if (c4_wins(env->stones[s])) return 1;
    if (env->plies >= C4_CELLS) return 2;
    return 0;
}

static void connect4_step(Connect4* env) {
    int s = env->to_move;
    uint64_t legal = c4_legal(env->stones[0] | env->stones[1]);
    int col = shoal_legal(env->actions[env->opponent ? s : 0], legal, C4_COLS, &env->invalid_actions);
    int result = c4_play(env, col);
    int winner = result == 1 ? s : -1;
    if (result == 0 && !env->opponent) {
        int bot = c4_search(env->stones[1], env->stones[0], env->depth, &env->rng);
        result = c4_play(env, bot);
        winner = result == 1 ? 1 : -1;
    }
    env->tick += 1;
    int done = result != 0;
    float r0 = winner == 0 ? 1.0f : (winner == 1 ? -1.0f : 0.0f);
    SHOAL_BOARD_STEP_END(connect4, env, r0, done, winner == 0 ? 1.0f : (winner < 0 ? 0.5f : 0.0f), r0);
}

static void connect4_render(Connect4* env, uint8_t* rgb) {
    const int cell = 32;
    for (int y = 0; y < C4_RENDER_H; y++) {
        for (int x = 0; x < C4_RENDER_W; x++) {
            uint8_t* p = rgb + ((size_t)y * C4_RENDER_W + x) * 3;
            int c = x / cell, r = C4_ROWS - 1 - y / cell;
            int dx = x % cell - cell / 2, dy = y % cell - cell / 2;
            p[0] = 30; p[1] = 60; p[2] = 170;
            if (dx * dx + dy * dy > 13 * 13) continue;
            int bit = 7 * c + r;
            if ((env->stones[0] >> bit) & 1) { p[0] = 230; p[1] = 50; p[2] = 50; }
            else if ((env->stones[1] >> bit) & 1) { p[0] = 240; p[1] = 210; p[2] = 40; }
            else { p[0] = 235; p[1] = 235; p[2] = 235; }
        }
    }
}

static void connect4_close(Connect4* env) { (void)env; }

/* The same search as the bot (deterministic ties) for the seat to move; the other seat's row gets 0. */
static void connect4_scripted(Connect4* env, int32_t* out) {
    int s = env->to_move;
    int col = c4_search(env->stones[s], env->stones[1 - s], env->depth, NULL);
    for (int k = 0; k < connect4_num_agents(env); k++) out[k] = k == s ? col : 0;
}

SHOAL_VECTOR(connect4, Connect4, float, int32_t, 1)

#endif
