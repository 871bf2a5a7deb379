"""cffi modules cannot be declared in pyproject.toml; everything else lives there."""

from setuptools import setup

setup(cffi_modules=["envs_c/build.py:ffibuilder"])
