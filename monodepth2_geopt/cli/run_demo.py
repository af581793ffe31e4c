"""Run the whole pipeline on the built-in synthetic world (CPU, a few minutes): see monodepth2_geopt/tools/demo.py.

    m2g-demo                        # = python run_demo.py; everything goes under ./demo
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import HelpFormatter


def main(argv: Sequence[str] | None = None) -> None:
    from monodepth2_geopt.tools.demo import run_demo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--out_dir", default="demo", help="where data, runs and outputs go")
    p.add_argument("--width", type=int, default=192, help="network input width")
    p.add_argument("--height", type=int, default=64, help="network input height")
    p.add_argument("--flow_epochs", type=int, default=2, help="epochs of GeoPt pretraining")
    p.add_argument("--depth_epochs", type=int, default=4, help="epochs of depth training")
    p.add_argument("--num_workers", type=int, default=1, help="data loader workers")
    p.add_argument("--num_threads", type=int, default=1,
                   help="PyTorch CPU threads of each step, pinned: the result depends on the thread count")
    p.add_argument("--keep_last", type=int, default=1, help="checkpoints kept per run (0: all)")
    a = p.parse_args(argv)
    run_demo(a.out_dir, a.width, a.height, flow_epochs=a.flow_epochs, depth_epochs=a.depth_epochs,
             num_workers=a.num_workers, num_threads=a.num_threads, keep_last=a.keep_last)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
