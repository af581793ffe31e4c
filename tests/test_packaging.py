"""Installing the project must not shadow other packages; the repository's top-level names stay Monodepth2's."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_installed_packages_are_under_monodepth2_geopt():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert all(p == "monodepth2_geopt" or p.startswith("monodepth2_geopt.") for p in packages), packages
    on_disk = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".") for p in (ROOT / "monodepth2_geopt").rglob("__init__.py")}
    assert on_disk == set(packages)  # every subpackage is installed


@pytest.mark.slow  # a fresh interpreter
def test_library_works_beside_a_huggingface_like_datasets(tmp_path):
    """With another top-level ``datasets`` first on the path (as Hugging Face's is when installed), the library
    imports and builds its datasets from ``monodepth2_geopt.datasets``, and ``import datasets`` is the other one."""
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("HUGGING_FACE = True\n")
    code = textwrap.dedent("""
        import datasets
        assert getattr(datasets, "HUGGING_FACE", False), datasets.__file__
        from monodepth2_geopt import depth_task, evaluation, flow_task, trainer  # each imports the project's datasets
        from monodepth2_geopt.datasets import DATASETS
        assert depth_task.DATASETS is DATASETS
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow  # a fresh interpreter
def test_repository_top_level_names_are_the_package_modules():
    code = textwrap.dedent("""
        import networks, datasets
        from networks.pose_cnn import PoseCNN
        from datasets.kitti_dataset import KITTIRAWDataset
        import monodepth2_geopt.networks.pose_cnn as pc
        import monodepth2_geopt.datasets as d
        assert PoseCNN is pc.PoseCNN and networks.PoseCNN is pc.PoseCNN
        assert KITTIRAWDataset is d.KITTIRAWDataset and datasets.DATASETS is d.DATASETS
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
