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
    a = p.parse_args(argv)
    run_demo(a.out_dir, a.width, a.height, flow_epochs=a.flow_epochs, depth_epochs=a.depth_epochs,
             num_workers=a.num_workers)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
