"""Nothing is compiled at install time: envs_c/build.py compiles each environment on first use (and
`python -m envs_c.build` warms its cache). Everything else lives in pyproject.toml."""

from setuptools import setup

setup()
