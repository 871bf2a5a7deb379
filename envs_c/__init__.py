"""shoal's C environments: one header per game, one batched C loop, numpy buffers shared zero-copy.

env = envs_c.make("cartpole", num_envs=4096, seed=0)
obs = env.reset()
obs, rewards, terminals, truncations = env.step(actions)
env.log()  # {"perf": ..., "score": ..., "episode_return": ..., "episode_length": ..., "n": ...}
"""

from typing import TYPE_CHECKING, Any

from envs_c.registry import ENVS
from envs_c.spec import EnvSpec, make_spec, version
from envs_c.vector import VecEnv

if TYPE_CHECKING:
    from envs_c.gym_adapter import GymnasiumVecEnv


def make(name: str, num_envs: int, seed: int = 0, **env_kwargs: Any) -> VecEnv:
    """A vector of `num_envs` environments; `num_threads=N` steps shards of it on N threads."""
    return VecEnv(name, num_envs, seed=seed, **env_kwargs)


def gymnasium_env(name: str, num_envs: int, seed: int = 0, **env_kwargs: Any) -> "GymnasiumVecEnv":
    """The same environments behind Gymnasium's VectorEnv API (one Gymnasium env per agent)."""
    from envs_c.gym_adapter import GymnasiumVecEnv

    return GymnasiumVecEnv(name, num_envs, seed=seed, **env_kwargs)


def names() -> list[str]:
    return sorted(ENVS)


__all__ = ["EnvSpec", "VecEnv", "gymnasium_env", "make", "make_spec", "names", "version"]
