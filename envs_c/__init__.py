"""shoal's environments: C ones (one header per game, one batched C loop, numpy buffers shared zero-copy) and
Python ones (Gymnasium and PettingZoo, on worker processes over shared memory), behind one VecEnv contract.

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
    """A vector of `num_envs` environments; `num_threads=N` steps shards of it on N threads (on N worker
    processes for a Python environment, `gymnasium:...` or `pettingzoo:...`: same buffers, same methods)."""
    if ":" in name:
        from envs_c.pyenvs.vector import PyVecEnv

        return PyVecEnv(name, num_envs, seed=seed, **env_kwargs)  # type: ignore[return-value]
    return VecEnv(name, num_envs, seed=seed, **env_kwargs)


def gymnasium_env(name: str, num_envs: int, seed: int = 0, **env_kwargs: Any) -> "GymnasiumVecEnv":
    """The same environments behind Gymnasium's VectorEnv API (one Gymnasium env per agent)."""
    from envs_c.gym_adapter import GymnasiumVecEnv

    return GymnasiumVecEnv(name, num_envs, seed=seed, **env_kwargs)


def names() -> list[str]:
    """The C environments (built-in and on SHOAL_ENV_PATH); python_names() lists the Python ones."""
    return sorted(ENVS)


def python_names() -> list[str]:
    """Python environments to list: the plain ids on SHOAL_PYTHON_ENVS and those with a spec file."""
    from envs_c.pyenvs.definition import python_names as listed

    return listed()


__all__ = ["EnvSpec", "VecEnv", "gymnasium_env", "make", "make_spec", "names", "python_names", "version"]
