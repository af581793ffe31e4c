"""Photometric, smoothness and minimum-reprojection losses against hand-computed values."""
import pytest
import torch

from monodepth2_geopt.layers import SSIM
from monodepth2_geopt.losses import (MinReprojectionConfig, min_reprojection_loss, normalised_smooth_loss,
                                     photometric_error, smooth_loss)


def textured(b=2, h=16, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


# --- SSIM / photometric error --------------------------------------------------------------------

def test_photometric_error_of_image_with_itself_is_zero():
    x = textured()
    err = photometric_error(x, x)
    assert err.shape == (2, 1, 16, 20)
    assert err.abs().max() < 1e-6
    assert SSIM()(x, x).abs().max() < 1e-6


def test_ssim_range_and_opposites():
    x, y = textured(seed=1), textured(seed=2)
    d = SSIM()(x, y)
    assert d.shape == x.shape
    assert d.min() >= 0 and d.max() <= 1
    assert d.mean() > 0.2  # unrelated noise images are dissimilar
    # An inverted image has negative local correlation: SSIM < 0, so the dissimilarity exceeds 0.5 somewhere.
    assert SSIM()(x, 1 - x).max() > 0.5


def test_ssim_of_constant_images_hand_value():
    """Constant images a and b: sigma = 0, SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b = 0.2, 0.6
    x, y = torch.full((1, 1, 5, 5), a, dtype=torch.float64), torch.full((1, 1, 5, 5), b, dtype=torch.float64)
    c1 = 0.01 ** 2
    expected = (1 - (2 * a * b + c1) / (a * a + b * b + c1)) / 2
    torch.testing.assert_close(SSIM()(x, y), torch.full_like(x, expected))


def test_photometric_error_no_ssim_is_mean_abs_difference():
    a, b = textured(seed=3), textured(seed=4)
    torch.testing.assert_close(photometric_error(a, b, no_ssim=True), (a - b).abs().mean(1, keepdim=True))


def test_photometric_error_weights_ssim_and_l1():
    a, b = textured(seed=5), textured(seed=6)
    expected = 0.85 * SSIM()(a, b).mean(1, keepdim=True) + 0.15 * (a - b).abs().mean(1, keepdim=True)
    torch.testing.assert_close(photometric_error(a, b), expected)


# --- smoothness ----------------------------------------------------------------------------------

def test_smooth_loss_of_constant_disparity_is_zero():
    img = textured()
    assert smooth_loss(torch.full((2, 1, 16, 20), 0.3), img).item() == 0.0
    assert normalised_smooth_loss(torch.full((2, 1, 16, 20), 0.3), img).item() == pytest.approx(0.0, abs=1e-7)


def test_smooth_loss_step_hand_value_and_edge_awareness():
    """A unit disparity step between columns 9 and 10: one of the W-1 horizontal differences is 1.

    Flat image: loss = 1 / (W - 1). Image with an RGB step e at the same place: loss = exp(-e) / (W - 1).
    """
    h, w, e = 8, 20, 0.7
    disp = torch.zeros(1, 1, h, w, dtype=torch.float64)
    disp[..., 10:] = 1.0
    flat = torch.full((1, 3, h, w), 0.5, dtype=torch.float64)
    edge = flat.clone()
    edge[..., 10:] += e
    loss_flat, loss_edge = smooth_loss(disp, flat), smooth_loss(disp, edge)
    assert loss_flat.item() == pytest.approx(1 / (w - 1))
    assert loss_edge.item() == pytest.approx(torch.exp(torch.tensor(-e)).item() / (w - 1))
    assert loss_edge < loss_flat
    # An image edge elsewhere does not discount the disparity step.
    elsewhere = flat.clone()
    elsewhere[..., 3:] += e
    assert smooth_loss(disp, elsewhere).item() == pytest.approx(loss_flat.item())


def test_smooth_loss_vertical_step():
    h, w = 10, 6
    disp = torch.zeros(1, 1, h, w)
    disp[:, :, 4:] = 2.0
    assert smooth_loss(disp, torch.zeros(1, 3, h, w)).item() == pytest.approx(2.0 / (h - 1))


def test_normalised_smooth_loss_is_scale_invariant():
    disp = torch.rand(2, 1, 16, 20, generator=torch.Generator().manual_seed(7)) + 0.05
    img = textured()
    base = normalised_smooth_loss(disp, img)
    for k in (0.01, 3.0, 100.0):
        assert normalised_smooth_loss(disp * k, img).item() == pytest.approx(base.item(), rel=1e-4)
    assert smooth_loss(disp * 3.0, img).item() == pytest.approx(3.0 * smooth_loss(disp, img).item(), rel=1e-5)


# --- minimum reprojection and auto-masking -------------------------------------------------------

def test_automask_picks_identity_on_static_pair():
    """Sources identical to the target: the identity error (0) wins everywhere and the loss is ~0."""
    target = textured(seed=8)
    sources = [target.clone(), target.clone()]
    warped = [textured(seed=9), target.roll(3, dims=3)]  # poor warps
    loss, selection, per_pixel = min_reprojection_loss(warped, sources, target, MinReprojectionConfig())
    assert selection.shape == (2, 16, 20)
    assert selection.sum().item() == 0
    assert abs(loss.item()) < 1e-5       # only the tie-break noise (std 1e-5, averaged) remains
    assert per_pixel.abs().max() < 1e-4


def test_automask_picks_warp_where_it_matches_better():
    target = textured(seed=10)
    sources = [textured(seed=11), textured(seed=12)]   # the unwarped sources differ from the target
    warped = [target.clone(), textured(seed=13)]        # the first warp is perfect
    loss, selection, _ = min_reprojection_loss(warped, sources, target, MinReprojectionConfig())
    assert selection.min().item() == 1.0
    assert abs(loss.item()) < 1e-6
    # Half the image static: left half of each source equals the target, the warps are bad there.
    sources = [target.clone(), target.clone()]
    for s in sources:
        s[..., 10:] = textured(seed=14)[..., 10:]
    warped = [target.roll(5, dims=2), target.roll(5, dims=2)]
    warped[0][..., 10:] = target[..., 10:]
    _, selection, _ = min_reprojection_loss(warped, sources, target, MinReprojectionConfig(no_ssim=True))
    assert selection[..., :10].sum() == 0
    assert selection[..., 10:].min() == 1


def test_per_pixel_minimum_vs_average_hand_values():
    """L1 errors against a zero target: warp 1 is 0.2 (left) / 0.6 (right), warp 2 is 0.4 / 0.1.

    minimum: 0.2 left, 0.1 right -> mean 0.15; average: 0.3 left, 0.35 right -> mean 0.325.
    """
    h, w = 4, 6
    target = torch.zeros(1, 3, h, w, dtype=torch.float64)
    w1, w2 = target.clone(), target.clone()
    w1[..., :3], w1[..., 3:] = 0.2, 0.6
    w2[..., :3], w2[..., 3:] = 0.4, 0.1
    cfg = MinReprojectionConfig(automask=False, no_ssim=True)
    loss, selection, per_pixel = min_reprojection_loss([w1, w2], [w1, w2], target, cfg)
    assert selection is None
    assert loss.item() == pytest.approx(0.15)
    torch.testing.assert_close(per_pixel[0, :, :3], torch.full((h, 3), 0.2, dtype=torch.float64))
    torch.testing.assert_close(per_pixel[0, :, 3:], torch.full((h, 3), 0.1, dtype=torch.float64))
    cfg = MinReprojectionConfig(automask=False, no_ssim=True, avg_reprojection=True)
    loss, _, per_pixel = min_reprojection_loss([w1, w2], [w1, w2], target, cfg)
    assert loss.item() == pytest.approx(0.325)
    # avg + automask: min(mean identity, mean reprojection) per pixel. Sources 0.05 everywhere -> 0.05.
    src = [torch.full_like(target, 0.05), torch.full_like(target, 0.05)]
    cfg = MinReprojectionConfig(no_ssim=True, avg_reprojection=True, tie_break_noise=0.0)
    loss, selection, _ = min_reprojection_loss([w1, w2], src, target, cfg)
    assert loss.item() == pytest.approx(0.05)
    assert selection.sum() == 0


def test_predictive_mask_multiplies_errors():
    h, w = 4, 6
    target = torch.zeros(1, 3, h, w)
    warped = [torch.full_like(target, 0.4), torch.full_like(target, 0.2)]
    mask = torch.stack([torch.full((h, w), 0.25), torch.full((h, w), 1.0)])[None]  # [1, 2, H, W]
    cfg = MinReprojectionConfig(automask=False, no_ssim=True)
    loss, _, _ = min_reprojection_loss(warped, warped, target, cfg, mask=mask)
    assert loss.item() == pytest.approx(min(0.4 * 0.25, 0.2 * 1.0))


def test_tie_break_noise_magnitude():
    """Identity error 0 and bad warps: the per-pixel minimum is the tie-break noise itself, N(0, 1e-5^2)."""
    torch.manual_seed(0)
    target = torch.rand(4, 3, 32, 32)
    per_pixel = min_reprojection_loss([1 - target], [target], target, MinReprojectionConfig())[2]
    assert per_pixel.abs().max() < 1e-4
    assert per_pixel.std().item() == pytest.approx(1e-5, rel=0.1)
    assert abs(per_pixel.mean().item()) < 1e-6
    noiseless = min_reprojection_loss([1 - target], [target], target, MinReprojectionConfig(tie_break_noise=0.0))
    assert noiseless[2].abs().max() < 1e-6


def test_min_reprojection_loss_is_differentiable_through_warps():
    target = textured(seed=20)
    warped = textured(seed=21).requires_grad_()
    loss, _, _ = min_reprojection_loss([warped], [textured(seed=22)], target, MinReprojectionConfig())
    loss.backward()
    assert warped.grad is not None and warped.grad.abs().sum() > 0


def test_shared_identity_errors_give_the_same_loss():
    """Precomputing the auto-masking identity errors once changes nothing but the cost."""
    from monodepth2_geopt.losses import MinReprojectionConfig, identity_reprojection_errors, min_reprojection_loss
    g = torch.Generator().manual_seed(0)
    target, s1, s2, w1, w2 = (torch.rand(2, 3, 16, 24, generator=g) for _ in range(5))
    cfg = MinReprojectionConfig(tie_break_noise=0.0)
    a = min_reprojection_loss([w1, w2], [s1, s2], target, cfg)
    b = min_reprojection_loss([w1, w2], [s1, s2], target, cfg, identity=identity_reprojection_errors([s1, s2], target))
    assert torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not identity_reprojection_errors([s1], target).requires_grad


def test_precomputed_identity_errors_match_and_carry_no_gradient():
    from monodepth2_geopt.losses import identity_reprojection_errors
    target, sources = textured(seed=30), [textured(seed=31), textured(seed=32).requires_grad_()]
    warped = [textured(seed=33), textured(seed=34)]
    identity = identity_reprojection_errors(sources, target)
    assert identity.shape == (2, 2, 16, 20) and not identity.requires_grad
    torch.testing.assert_close(identity[:, 1:], photometric_error(sources[1].detach(), target))
    cfg = MinReprojectionConfig(tie_break_noise=0.0)
    a = min_reprojection_loss(warped, sources, target, cfg)
    b = min_reprojection_loss(warped, sources, target, cfg, identity=identity)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
