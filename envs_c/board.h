/* What the two-player board games (connect4, reversi) share: their Log and the end of their step.
 *
 * A header of its own, not part of env.h, so that changing it changes the version of these two games only.
 */
#ifndef SHOAL_BOARD_H
#define SHOAL_BOARD_H

#include "env.h"

/* wins and draws are seat 0's (SHOAL_LOG_GAME counts them); invalid_actions are illegal moves replaced. */
typedef struct {
    SHOAL_LOG_FIELDS
    float wins;
    float draws;
    float invalid_actions;
    float n;
} BoardLog;

/* The end of a board game's step, once the moves are made: seat 0 gets R0 and seat 1, when it plays, -R0.
 * A game that is DONE goes into the Log (RESULT and SCORE as SHOAL_LOG_GAME takes them) and a new one
 * starts; otherwise every seat observes the new position. ENV has the fields opponent, tick, games,
 * episode_return and invalid_actions, and NAME_reset and NAME_observe are the game's. */
#define SHOAL_BOARD_STEP_END(NAME, ENV, R0, DONE, RESULT, SCORE)                                  \
    do {                                                                                          \
        SHOAL_ZERO_SUM_RESULT(ENV, (ENV)->opponent, R0, DONE, 0);                                 \
        (ENV)->episode_return += (R0);                                                            \
        if (DONE) {                                                                               \
            SHOAL_LOG_GAME((ENV)->log, RESULT, SCORE, (ENV)->episode_return, (float)(ENV)->tick); \
            (ENV)->log.invalid_actions += (ENV)->invalid_actions;                                 \
            (ENV)->games += 1;                                                                    \
            NAME##_reset(ENV);                                                                    \
        } else {                                                                                  \
            NAME##_observe(ENV);                                                                  \
        }                                                                                         \
    } while (0)

#endif
