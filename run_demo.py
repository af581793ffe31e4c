"""Run the whole pipeline on the built-in synthetic world (CPU, a few minutes): see monodepth2_geopt/tools/demo.py."""
import argparse

from monodepth2_geopt.errors import run_cli


def main():
    from monodepth2_geopt.tools.demo import run_demo

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out_dir", default="demo", help="where data, runs and outputs go")
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--flow_epochs", type=int, default=2)
    p.add_argument("--depth_epochs", type=int, default=4)
    p.add_argument("--num_workers", type=int, default=1)
    a = p.parse_args()
    run_demo(a.out_dir, a.width, a.height, flow_epochs=a.flow_epochs, depth_epochs=a.depth_epochs,
             num_workers=a.num_workers)


if __name__ == "__main__":
    run_cli(main)
