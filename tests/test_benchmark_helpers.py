"""The benchmarks' shared helpers (benchmarks/common.py): the numbers RESULTS.md prints."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402


def test_mean_sd_is_the_mean_and_sample_sd_over_seeds():
    assert common.mean_sd([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"  # sample sd: sqrt(0.02 / 2)
    assert common.mean_sd([1.5, -2.0], "+.1f") == "-0.2 ± 2.5"  # signed mean, unsigned sd
    assert common.mean_sd((v for v in [1.0, 2.0]), ".3f") == "1.500 ± 0.707"


@pytest.mark.parametrize("values, text", [
    ([0.3], "0.3000 (one seed: no spread)"),
    ([0.1, None, 0.3], "0.2000 ± 0.1414 (n=2)"),
    ([0.25, None], "0.2500 (one seed: no spread) (n=1)"),
    ([None, None], "not run"),
])
def test_mean_sd_says_when_seeds_are_missing_or_alone(values, text):
    assert common.mean_sd(values) == text


# --- bench_intrinsics: the two-sided drift control's verdict ------------------------------------------------------
def _verdict(sides):
    import bench_intrinsics
    return bench_intrinsics.control_verdict("fx", sides)


def test_a_focal_length_that_nears_the_truth_from_both_sides_is_called_learned():
    assert "moves towards the truth from both sides" in _verdict([(+20.7, [+5.0, -3.0]), (-20.7, [-8.0, +19.0])])


@pytest.mark.parametrize("sides", [
    [(+20.7, [+5.0, +25.0]), (-20.7, [-8.0, -2.0])],  # one seed ends further off than it started
    [(+20.7, [+8.0, +7.0]), (-20.7, [-33.0, -32.0])],  # a drift downwards: nearer from above, further from below
    [(+20.7, [+20.7]), (-20.7, [-20.7])],  # stayed put: not nearer
])
def test_a_drift_or_a_focal_length_that_stays_put_is_not_called_learned(sides):
    assert "a drift, not learning" in _verdict(sides)


def test_guesses_on_one_side_of_the_truth_make_the_control_one_sided():
    text = _verdict([(-16.7, [-5.0]), (-37.5, [-10.0])])
    assert "both guesses are below the truth" in text and "learned" not in text


# --- bench_intrinsics: the report from cached runs (no training) ---------------------------------------------------
def _args(**kw):
    import bench_intrinsics
    args = bench_intrinsics.parser().parse_args(["--square_pixels", "--learned_modes", "square", "--seeds", "0", "1"])
    vars(args).update(kw)
    return args


def _run(abs_rel, fx=None, machine=None):
    run = {"abs_rel": abs_rel, "curve": [] if fx is None else [[400, fx, fx * 2.5]]}
    if fx is not None:
        run.update(test_k=[fx, fx * 2.5, 0.5, 0.5], test_sd=[0.0] * 4)
    if machine:
        run["machine"] = machine
    return run


def _cache(args, kept=True, true=True, machines=("A", "A", "A")):
    import bench_intrinsics as b
    keys, cache = b.Keys(args), {}
    for seed in args.seeds:
        cache[keys.learned(seed, "square", args.init)] = _run(0.27, fx=0.638, machine=machines[0])  # fx +10 %
        if kept:
            cache[keys.kept(seed, b.start_k("square", args.init))] = _run(0.30, machine=machines[1])
        if true:
            cache[keys.true({}, seed, args.init)] = _run(0.25, machine=machines[2])
    return cache


def test_square_pixel_runs_start_from_fy_over_height_of_fx_times_the_input_aspect():
    import bench_intrinsics as b
    assert b.start_k("square", [0.7, 1.6, 0.5, 0.5]) == pytest.approx([0.7, 1.75, 0.5, 0.5])  # 160x64: W/H 2.5
    assert b.start_k("learn", [0.7, 1.6, 0.5, 0.5]) == [0.7, 1.6, 0.5, 0.5]


def test_report_compares_learning_with_the_guess_it_started_from_kept():
    import bench_intrinsics as b
    args = _args()
    _, body, measured_on = b.report(_cache(args), args)
    assert "the guess kept (--intrinsics 0.7 1.75 0.5 0.5)" in body
    assert "fx error +10.0 ± 0.0 %" in body
    assert "abs_rel change against true K +8.0 ± 0.0 %" in body  # learned 0.27 against 0.25
    assert "abs_rel change against true K +20.0 ± 0.0 %" in body  # kept 0.30 against 0.25
    # learning lowers abs_rel from +20 % to +8 % of true K's, both seeds; a sign error would print +12.0 or 0 of 2
    assert "minus the guess it started from, kept (abs_rel change against true K, same seed): -12.0 ± 0.0 points " \
           "(2 of 2 seeds lower with learning)" in body
    assert measured_on == "A" and "more than one machine" not in body  # the runs' machine, not the reporter's


def test_warmup_runs_are_cached_apart_and_share_the_kept_and_true_k_references():
    """--intrinsics_warmup changes what the learned runs do, so they get their own cache keys (a plain run must not
    be reported as a warmup run); the kept-guess and true-K runs learn nothing and are shared."""
    import bench_intrinsics as b
    plain, warm = _args(), _args(intrinsics_warmup=400)
    assert b.Keys(warm).learned(0, "square", warm.init) != b.Keys(plain).learned(0, "square", plain.init)
    assert b.Keys(warm).learned(0, "square", warm.init).split("/")[0].endswith("_warm400")
    k = b.start_k("square", warm.init)
    assert b.Keys(warm).kept(0, k) == b.Keys(plain).kept(0, k)
    assert b.Keys(warm).true({}, 0, warm.init) == b.Keys(plain).true({}, 0, plain.init)
    section, body, _ = b.report(_cache(warm), warm)
    assert section.endswith(", --intrinsics_warmup 400") and "first 400 steps" in body
    assert "minus the guess it started from, kept" in body  # the plain kept runs are its baseline
    with pytest.raises(KeyError):  # a cache of plain runs has no warmup run to report
        b.report(_cache(plain), warm)


def test_report_without_true_k_or_kept_runs_says_not_run():
    import bench_intrinsics as b
    args = _args(steps=1600)
    section, body, _ = b.report(_cache(args, kept=False, true=False), args)
    assert section.endswith(", 1600 steps, --learn_intrinsics --square_pixels only")
    assert "abs_rel change against true K not run" in body and "the guess kept" not in body


def test_report_names_every_machine_its_runs_came_from_and_the_recheck_gap():
    import bench_intrinsics as b
    args = _args()
    cache = _cache(args, machines=("A", "B", None))
    cache[b.Keys(args).recheck_prefix(0) + "B"] = _run(0.275, machine="B")
    _, body, measured_on = b.report(cache, args)
    assert measured_on == "runs from A / B / not recorded" and "more than one machine" in body
    assert "seeds [0] again on B: abs_rel 0.2750 against the cached 0.2500 (made on a machine not recorded), " \
           "+10.0 (one seed: no spread) %" in body


def test_a_run_is_compared_with_the_true_k_run_of_its_own_machine_when_there_is_one():
    import bench_intrinsics as b
    args = _args()
    cache = _cache(args, machines=("A", "B", None))
    cache[b.Keys(args).recheck_prefix(0) + "B"] = _run(0.275, machine="B")  # seed 0's true K, rerun on B
    _, body, _ = b.report(cache, args)
    rows = [line for line in body.splitlines() if line.startswith("| ") and "the guess kept" in line]
    assert "| 0.2750 (same machine) | 0.3 | 9.091 |" in rows[0]  # seed 0 on B: against B's true-K run
    assert "| 0.2500 | 0.3 | 20 |" in rows[1]  # seed 1: B has no true-K run of it, so the cached one
    assert "+14.5 ± 7.7 %" in body  # the kept runs' changes, 9.09 and 20


def test_the_last_third_counts_a_run_that_crosses_the_truth_by_the_size_of_its_error():
    import bench_intrinsics as b
    truth = 0.5

    def run(*fx):  # fx/W at steps 400, 800, 1200
        return {"curve": [[400 * (i + 1), v, 1.0] for i, v in enumerate(fx)]}
    above = [run(0.70, 0.60, 0.55), run(0.70, 0.55, 0.60)]  # +20 -> +10 % nearer; +10 -> +20 % further
    below = [run(0.40, 0.47, 0.51), run(0.40, 0.49, 0.53)]  # -6 -> +2 % nearer; -2 -> +6 % further (crossed)
    text = b.late_text("fx", 0, truth, {"0.7": above, "0.4": below})
    assert text.startswith("Last third of the runs (step 800 -> 1200), fx: ")
    assert "from --init 0.7 +15.0 ± 7.1 -> +15.0 ± 7.1 % (nearer the truth in 1 of 2 runs)" in text
    assert "from --init 0.4 -4.0 ± 2.8 -> +4.0 ± 2.8 % (nearer the truth in 1 of 2 runs)" in text


def test_report_only_names_the_first_learned_run_missing_from_the_cache_and_trains_nothing(tmp_path, monkeypatch):
    import bench_intrinsics as b
    cache = tmp_path / "intrinsics.json"
    cache.write_text("{}")
    monkeypatch.setattr(b, "CACHE", cache)
    monkeypatch.setattr("sys.argv", ["bench_intrinsics.py", "--report_only", "--square_pixels", "--seeds", "0"])
    with pytest.raises(SystemExit) as stop:
        b.main()
    assert str(stop.value) == (f"error: --report_only: steps400_init0.7_1.6_0.5_0.5_square/seed0/square is not in "
                               f"{cache}; run without --report_only")


def test_the_machine_line_names_the_runs_machines():
    assert common.machines_of([{"machine": "B"}, {"machine": "A"}, {}]) == "runs from A / B / not recorded"
    assert common.machines_of([{"machine": "A"}, {"machine": "A"}]) == "A"


def test_seen_frames_are_train_targets_spread_over_the_split_with_their_own_ground_truth(tmp_path, monkeypatch):
    import bench_pseudo_labels as b
    split = tmp_path / "splits"
    split.mkdir()
    train = [f"drive_{d} {i} l" for d in range(4) for i in range(1, 31)]  # 120 lines
    (split / "train_files.txt").write_text("\n".join(train) + "\n")
    (split / "test_files.txt").write_text("drive_9 5 l\n")
    exported = []
    monkeypatch.setattr("monodepth2_geopt.gt_depth.export_gt_depths",
                        lambda data, out, source, overwrite=False: exported.append((Path(out), source)))
    out = b.seen_split(tmp_path / "data", split)
    picks = (out / "test_files.txt").read_text().split("\n")[:-1]
    assert len(picks) == b.SEEN_FRAMES == 50 and len(set(picks)) == 50
    assert picks[0] == train[0] and picks[-1] == train[-1] and all(p in train for p in picks)
    assert {p.split()[0] for p in picks} == {f"drive_{d}" for d in range(4)}  # every drive, not the first ones
    assert exported == [(out, "depth_png")] and out != split  # the held-out split's GT is left alone
