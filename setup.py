"""Packaging beyond pyproject.toml: the top-level conf/ (the one source of the Hydra configs) ships
inside the wheel as the package `genexp.conf`, so an installed genexp finds its configs
(`python -m genexp` reads `pkg://genexp.conf` when no checkout's conf/ sits beside the package)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["genexp", "genexp.*"]) + ["genexp.conf"],
    package_dir={"genexp.conf": "conf"},
    package_data={"genexp.conf": ["*.yaml", "**/*.yaml"], "genexp.metrics": ["weights/*.pt", "weights/*.json"]},
)
