"""The league's link to the database (glue for `league.SelfPlayEnv`): the Elo service's match results of the
learner against its pool, and the files of the checkpoints a run's `selfplay.pool` names.

The learner itself is never a player in the Elo service; its newest checkpoint that has played is its
stand-in, so "how often a member beats the learner" is read from that checkpoint's games against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, or_, select

import envs_c
from services.common import artifacts
from services.common.db import session_scope
from services.common.models import Checkpoint, EloPlayer, Match, PlayerKind
from services.trainer.league import Key


class DatabaseLeagueLink:
    def __init__(self, run_id: int, env: str):
        self.run_id, self.env = run_id, env

    def results(self, keys: Sequence[Key]) -> dict[Key, tuple[float, float]]:
        version = envs_c.version(self.env)
        with session_scope() as session:
            current = (Match.env == self.env) & (Match.env_version == version)
            mine = (
                (EloPlayer.env == self.env)
                & (EloPlayer.run_id == self.run_id)
                & (EloPlayer.kind == PlayerKind.checkpoint)
            )
            played = select(Match.player_a).where(current).union(select(Match.player_b).where(current))
            learner = session.scalar(
                select(EloPlayer.id)
                .where(mine, EloPlayer.id.in_(played))
                .order_by(EloPlayer.step.desc())
                .limit(1)
            )
            if learner is None:
                return {}
            by_key = {
                ("step", step): pid
                for pid, step in session.execute(select(EloPlayer.id, EloPlayer.step).where(mine))
            }
            named = [n for kind, n in keys if kind == "checkpoint"]
            by_key |= {
                ("checkpoint", int(name)): pid
                for pid, name in session.execute(
                    select(EloPlayer.id, EloPlayer.name).where(
                        EloPlayer.env == self.env, EloPlayer.name.in_([str(n) for n in named])
                    )
                )
            }
            wanted = {by_key[k]: k for k in keys if k in by_key and by_key[k] != learner}
            rows = session.execute(
                select(Match.player_a, Match.player_b, func.count(), func.sum(Match.score_a))
                .where(
                    current,
                    or_(
                        (Match.player_a == learner) & Match.player_b.in_(wanted),
                        (Match.player_b == learner) & Match.player_a.in_(wanted),
                    ),
                )
                .group_by(Match.player_a, Match.player_b)
            ).all()
        out: dict[Key, tuple[float, float]] = {}
        for a, b, games, score_a in rows:
            member, points = (b, float(score_a)) if a == learner else (a, games - float(score_a))
            before = out.get(wanted[member], (0.0, 0.0))
            out[wanted[member]] = (before[0] + points, before[1] + games)
        return out

    def members(self, checkpoint_ids: Sequence[int]) -> list[Path]:
        with session_scope() as session:
            query = select(Checkpoint.id, Checkpoint.path).where(Checkpoint.id.in_(checkpoint_ids))
            paths = {checkpoint_id: path for checkpoint_id, path in session.execute(query)}
        missing = [i for i in checkpoint_ids if i not in paths]
        if missing:
            raise ValueError(f"selfplay.pool: checkpoint {missing[0]} no longer exists")
        return [artifacts.absolute(paths[i]) for i in checkpoint_ids]
