"""Where the default data, split and model folders are looked for.

Monodepth2 resolves ``kitti_data``, ``splits/`` and ``models/`` next to its code. That works in a clone, but an
installed package's code lives in site-packages, where no user keeps data. So the *project root* is:

1. ``$M2G_HOME`` when set (e.g. ``export M2G_HOME=~/monodepth2``),
2. else the repository, when the package runs from a clone (``pyproject.toml`` beside the package folder:
   ``python train.py`` or an editable install),
3. else the current working directory (a non-editable ``pip install .``, run as ``m2g-train`` from any folder).

Defaults below it: ``<root>/kitti_data`` (``--data_path``), ``<root>/splits/<name>`` (``--split``,
``--eval_split``, ``download_splits.py``) and ``<root>/models/<name>`` (released models of ``test_simple.py``).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "M2G_HOME"
PACKAGE_DIR = Path(__file__).resolve().parent


def source_checkout() -> Path | None:
    """The repository root when this package runs from a clone (or an editable install), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def project_root() -> Path:
    """``$M2G_HOME``, else the clone, else the working directory (see the module docstring)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    checkout = source_checkout()
    return checkout if checkout is not None else Path.cwd()


def default_data_path() -> Path:
    return project_root() / "kitti_data"


def splits_dir() -> Path:
    return project_root() / "splits"


def models_dir() -> Path:
    return project_root() / "models"


# The console command of each flat script (pyproject.toml [project.scripts]).
CONSOLE_COMMANDS = {"train.py": "m2g-train", "pretrain_flow.py": "m2g-pretrain", "evaluate_depth.py": "m2g-evaluate",
                    "test_simple.py": "m2g-infer", "evaluate_pose.py": "m2g-evaluate-pose",
                    "evaluate_flow.py": "m2g-evaluate-flow", "evaluate_intrinsics.py": "m2g-evaluate-intrinsics",
                    "export_gt_depth.py": "m2g-export-gt-depth", "download_splits.py": "m2g-download-splits",
                    "make_split.py": "m2g-make-split", "extract_frames.py": "m2g-extract-frames",
                    "generate_synthetic.py": "m2g-generate-synthetic", "prepare_cache.py": "m2g-prepare-cache",
                    "run_demo.py": "m2g-demo", "export_model.py": "m2g-export", "predict_flow.py": "m2g-predict-flow",
                    "make_pseudo_labels.py": "m2g-pseudo-labels"}


def command(script: str) -> str:
    """How the user runs ``script`` here: ``python train.py`` in a clone, ``m2g-train`` from an installed package
    (for messages that tell the user what to type)."""
    return f"python {script}" if source_checkout() is not None else CONSOLE_COMMANDS[script]
