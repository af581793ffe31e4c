"""Installing the project must not shadow other packages; the repository's top-level names stay Monodepth2's."""
import os
import shutil
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


@pytest.mark.slow  # a venv, a wheel build and a few fresh interpreters (about 10 s)
def test_non_editable_install_gives_console_commands_and_shadows_nothing(tmp_path):
    """``pip install .`` (non-editable, into a fresh venv that also holds a Hugging Face-like ``datasets``): the
    m2g-* commands run from another folder, their default paths follow that folder (or $M2G_HOME), not
    site-packages, and the only top-level package installed is monodepth2_geopt."""
    src = tmp_path / "src"  # a copy: building in the repository would leave build/ and *.egg-info there
    src.mkdir()
    for name in ("pyproject.toml", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "monodepth2_geopt", src / "monodepth2_geopt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # --system-site-packages: torch & co. come from this interpreter's environment; pip too (the venv has none)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    out = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--ignore-installed", str(src)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    installed = {p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "__pycache__"}
    assert installed == {"monodepth2_geopt"}, installed  # no top-level networks/ or datasets/
    (site / "datasets").mkdir()  # a Hugging Face-like datasets installed beside it
    (site / "datasets" / "__init__.py").write_text("HUGGING_FACE = True\n")

    work = tmp_path / "work"  # the user's folder: no repository anywhere near
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "M2G_HOME")}
    env["OMP_NUM_THREADS"] = "1"

    def run(*cmd, **extra):
        return subprocess.run([str(c) for c in cmd], cwd=work, env=dict(env, **extra), capture_output=True,
                              text=True, timeout=120)

    code = textwrap.dedent("""
        import datasets, monodepth2_geopt
        from monodepth2_geopt.datasets import DATASETS
        from monodepth2_geopt.options import MonodepthOptions
        assert getattr(datasets, "HUGGING_FACE", False), datasets.__file__
        print(monodepth2_geopt.__file__)
        print(MonodepthOptions().parse([]).data_path)
    """)
    out = run(python, "-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    package_file, data_path = out.stdout.split()
    assert Path(package_file).is_relative_to(site)
    assert data_path == str(work / "kitti_data")  # the working directory, not site-packages
    help_text = run(bin_dir / "m2g-train", "--help")
    assert help_text.returncode == 0 and "usage: m2g-train" in help_text.stdout
    unwrapped = "".join(help_text.stdout.split())  # argparse wraps long paths mid-word
    assert f"(default:{work / 'kitti_data'})" in unwrapped
    flow_help = run(bin_dir / "m2g-evaluate-flow", "--help").stdout
    assert "--flow_eval_path" in flow_help and "--pose_model_type" not in flow_help
    home = tmp_path / "home"
    assert f"(default:{home / 'kitti_data'})" in "".join(run(bin_dir / "m2g-pretrain", "--help",
                                                              M2G_HOME=str(home)).stdout.split())
    # a real run of the installed evaluation: the default split is looked for under ./splits, in one line
    out = run(bin_dir / "m2g-evaluate", "--eval_mono", "--load_weights_folder", work / "w")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr[-2000:]
    assert f"under {work / 'splits'}" in out.stderr and "m2g-download-splits eigen" in out.stderr
