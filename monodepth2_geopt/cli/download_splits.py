"""Download the published KITTI split lists from Monodepth2's repository, SHA-256 checked.

    m2g-download-splits                 # = python download_splits.py; all of them into <project root>/splits
    m2g-download-splits eigen eigen_zhou --out_dir my_splits/
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import HelpFormatter
from monodepth2_geopt.splits import (PUBLISHED_SPLITS, REPO_ROOT, SplitDownloadError,
                                     download_splits, verify_splits)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    # No choices=: argparse rejects an empty nargs="*" list against choices; the library checks.
    parser.add_argument("names", nargs="*", metavar="SPLIT",
                        help=f"splits to fetch (default: all): {', '.join(PUBLISHED_SPLITS)}")
    parser.add_argument("--out_dir", "--dest", dest="dest", default=str(REPO_ROOT / "splits"),
                        help="destination folder (--dest: the earlier name)")
    parser.add_argument("--verify", action="store_true", help="only check the files' hashes")
    parser.add_argument("--force", action="store_true", help="download even if files are valid")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace present files whose content differs from the published ones (e.g. your "
                             "edits); without it the script refuses and fetches nothing")
    opt = parser.parse_args(argv)
    names = opt.names or None
    try:
        if not opt.verify:
            download_splits(names, opt.dest, overwrite=opt.overwrite, force=opt.force)
        bad = {rel: s for rel, s in verify_splits(opt.dest, names).items() if s != "ok"}
    except (OSError, ValueError, SplitDownloadError) as err:
        raise InputError(str(err)) from None
    if bad:
        raise InputError("; ".join(f"{rel} {s}" for rel, s in bad.items()) + f" in {opt.dest}")
    print(f"Split files in {opt.dest} are complete and match their SHA-256 hashes")


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
