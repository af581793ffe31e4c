"""The speed options do not change the training result."""
import pytest

from monodepth2_geopt.tools.experiments import evaluate_weights, train_steps
from tests.conftest import synthetic_trainer

pytestmark = pytest.mark.slow  # 100-step continuations of the shared M run (itself slow)

CONTINUE_STEPS = 100
FINE_LR = 2e-5
FP32 = ["--amp", "off", "--channels_last", "off"]
# Every speed option the CPU has (torch.compile is left to the GPU benchmark: compiling on 2 cores takes minutes).
ALL_ON = ["--amp", "bf16", "--channels_last", "on"]


def continue_training(mono_world, mono_run, log_dir, name, flags):
    """Resume ``mono_run``'s model and optimiser, train CONTINUE_STEPS more at lr 2e-5, return abs_rel."""
    trainer = synthetic_trainer(mono_world, log_dir, name, "M",
                                extra=["--load_weights_folder", mono_run.weights, *flags])
    stats = train_steps(trainer, CONTINUE_STEPS, lr=FINE_LR)
    return evaluate_weights(stats["weights"], *mono_world)["abs_rel"]


def test_speed_options_keep_the_training_result(mono_world, mono_run, tmp_path):
    """bf16 autocast + channels_last give the fp32 result within 2% (relative abs_rel), the issue's bound.

    Both runs resume the same M model (``mono_run``: 250 steps from scratch) and its Adam state, and train 100
    more steps at Monodepth2's second-phase rate (lr / 10) with the same seed, data order and augmentation, so
    the only difference is the arithmetic. Measured: start 0.330, fp32 0.3036, all options 0.3037 (0.03%), while
    fp32 with another seed gives 0.3117 (2.7%), so the bound sits below the run-to-run spread and the options
    far inside it. From-scratch runs cannot make this comparison: escaping the random initialisation is chaotic
    on this world (at lr 2e-4 the same continuation moves 0.5-2% with any change of kernels, 14% with another
    seed; S runs from scratch either learn or stay near the untrained 0.9 depending on the seed). See
    benchmarks/RESULTS.md, "Speed options and the training result (160x64)".
    """
    start = mono_run.after["abs_rel"]
    plain = continue_training(mono_world, mono_run, tmp_path, "fp32", FP32)
    fast = continue_training(mono_world, mono_run, tmp_path, "fast", ALL_ON)
    msg = f"abs_rel: start {start:.4f}, +{CONTINUE_STEPS} steps fp32 {plain:.4f}, bf16 + channels_last {fast:.4f}"
    print(msg)
    assert abs(fast - plain) <= 0.02 * plain, msg
    # The comparison is only informative if the fp32 continuation still learns. How much it improves depends on
    # the machine's numerics and thread count (0.330 -> 0.304 with 2 threads here; 0.307 -> 0.304 with 1 thread,
    # 0.309 -> 0.302 on another machine), so a small improvement is a skipped precondition, not a failure.
    assert plain < start, "the continued fp32 run got worse: " + msg
    if plain > start - 0.01:
        pytest.skip("the fp32 continuation improved abs_rel by less than 0.01, so the 2 % check above is weak "
                    "on this machine: " + msg)
