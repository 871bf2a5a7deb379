"""Python environments (Gymnasium ids, PettingZoo modules) behind the same VecEnv contract as the C ones.

allowlist: SHOAL_PYTHON_ENVS, checked before anything is imported. recipe: how to construct one, as data.
definition: spaces, seats and perf as the registry describes an environment. adapters: one environment
writing its rows of the shared buffers. worker and vector: the processes and the VecEnv. baseline: a random
policy's return, perf's zero for a Gymnasium environment with a reward_threshold.
"""
