"""Monodepth2's top-level ``networks`` for code run from the repository root: the modules of
``monodepth2_geopt.networks`` (see ``monodepth2_geopt.repo_alias``); not installed."""
from monodepth2_geopt.repo_alias import alias

alias(__name__, "monodepth2_geopt.networks")
