"""prepare_batch: float pyramid, per-scale intrinsics, colour augmentation shared by the frames of a sample."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from monodepth2_geopt.batch import color_augment, lanczos_weights, prepare_batch, pyramid
from monodepth2_geopt.datasets import KITTIRAWDataset
from monodepth2_geopt.losses import photometric_error
from tests.conftest import render_plane

FRAMES = [0, -1, 1, "s"]


def uint8_batch(b=2, h=64, w=96, frames=FRAMES, seed=0, identical=False):
    g = torch.Generator().manual_seed(seed)
    batch = {}
    base = torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)
    for f in frames:
        batch[("color", f)] = base.clone() if identical else torch.randint(0, 256, (b, 3, h, w), generator=g,
                                                                           dtype=torch.uint8)
    K = torch.tensor([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    batch["K"] = K.repeat(b, 1, 1)
    batch["stereo_T"] = torch.eye(4).repeat(b, 1, 1)
    batch["flip"] = torch.zeros(b, dtype=torch.bool)
    batch["index"] = torch.arange(b)
    return batch


@pytest.mark.parametrize("b", [1, 3])
def test_pyramid_keys_and_sizes(b):
    h, w = 64, 96
    inputs = prepare_batch(uint8_batch(b, h, w), torch.device("cpu"), num_scales=4)
    for f in FRAMES:
        for s in range(4):
            x = inputs[("color", f, s)]
            assert x.shape == (b, 3, h // 2 ** s, w // 2 ** s) and x.dtype == torch.float32
        assert inputs[("color_aug", f, 0)].shape == (b, 3, h, w)
    assert inputs["stereo_T"].shape == (b, 4, 4) and inputs["index"].tolist() == list(range(b))


def test_scale_zero_is_the_frame_in_unit_range():
    batch = uint8_batch()
    inputs = prepare_batch(batch, torch.device("cpu"))
    torch.testing.assert_close(inputs[("color", -1, 0)], batch[("color", -1)].float() / 255)
    assert 0 <= inputs[("color", 0, 3)].min() and inputs[("color", 0, 3)].max() <= 1


def test_pyramid_of_constant_image_is_constant_and_smooth_images_downsample_by_averaging():
    img = torch.full((1, 3, 32, 64), 77 / 255)  # frames are 8-bit values, and each level is rounded to 8 bits
    for level in pyramid(img, 4):
        torch.testing.assert_close(level, torch.full_like(level, 77 / 255))
    # 2x2 checkerboard of 0/1: antialiased half resolution is the block mean, 0.5 everywhere (away from borders)
    board = (torch.arange(64)[None, :] + torch.arange(32)[:, None]) % 2
    half = pyramid(board.float()[None, None], 2)[1]
    torch.testing.assert_close(half[..., 2:-2, 2:-2], torch.full_like(half[..., 2:-2, 2:-2], 0.5),
                               atol=0.51 / 255, rtol=0)  # 127.5 rounds to 128 in 8 bits


def test_intrinsics_per_scale():
    """K at scale s = normalised K x (W / 2^s, H / 2^s); inv_K is its inverse."""
    h, w = 64, 96
    inputs = prepare_batch(uint8_batch(2, h, w), torch.device("cpu"))
    for s in range(4):
        ws, hs = w // 2 ** s, h // 2 ** s
        expected = torch.tensor([[0.58 * ws, 0, 0.5 * ws, 0], [0, 1.92 * hs, 0.5 * hs, 0],
                                 [0, 0, 1, 0], [0, 0, 0, 1]]).repeat(2, 1, 1)
        torch.testing.assert_close(inputs[("K", s)], expected)
        torch.testing.assert_close(inputs[("inv_K", s)] @ inputs[("K", s)], torch.eye(4).repeat(2, 1, 1),
                                   rtol=0, atol=1e-6)
        assert inputs[("inv_K", s)][0, 0, 0].item() == pytest.approx(1 / (0.58 * ws))


def test_flipped_sample_keeps_its_own_cx():
    batch = uint8_batch(2)
    batch["K"][1, 0, 2] = 0.7   # the dataset mirrored cx = 0.3 for this sample
    inputs = prepare_batch(batch, torch.device("cpu"))
    assert inputs[("K", 0)][0, 0, 2].item() == pytest.approx(0.5 * 96)
    assert inputs[("K", 1)][1, 0, 2].item() == pytest.approx(0.7 * 48)


def test_no_augmentation_leaves_color_aug_equal_to_color():
    inputs = prepare_batch(uint8_batch(), torch.device("cpu"), augment=False)
    for f in FRAMES:
        assert torch.equal(inputs[("color_aug", f, 0)], inputs[("color", f, 0)])


def test_augmentation_is_shared_by_the_frames_of_a_sample_and_differs_across_samples():
    b = 8
    batch = uint8_batch(b, 32, 64, identical=True)  # every frame of every sample is the same picture
    g = torch.Generator().manual_seed(1)
    inputs = prepare_batch(batch, torch.device("cpu"), augment=True, generator=g)
    orig = inputs[("color", 0, 0)]
    aug = {f: inputs[("color_aug", f, 0)] for f in FRAMES}
    for f in FRAMES:
        torch.testing.assert_close(aug[f], aug[0], rtol=0, atol=0)         # same jitter for every frame
        assert torch.equal(inputs[("color", f, 0)], orig)                  # targets stay unaugmented
    changed = [i for i in range(b) if not torch.allclose(aug[0][i], orig[i])]
    assert 0 < len(changed) < b                                            # p = 0.5 per sample
    for i in set(range(b)) - set(changed):
        assert torch.equal(aug[0][i], orig[i])
    # different samples got different jitter (all samples start from the same picture)
    for i in changed:
        for j in changed:
            if i < j:
                assert not torch.allclose(aug[0][i], aug[0][j])
    assert 0 <= aug[0].min() and aug[0].max() <= 1


def test_color_augment_is_deterministic_given_a_generator():
    frames = torch.rand(4, 3, 3, 16, 16)
    a = color_augment(frames, torch.Generator().manual_seed(5))
    b = color_augment(frames, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    c = color_augment(frames, torch.Generator().manual_seed(6))
    assert not torch.equal(a, c)


def test_prepare_batch_from_the_dataset(kitti_tiny):
    ds = KITTIRAWDataset(kitti_tiny.root, [f"{kitti_tiny.drive} 2 l", f"{kitti_tiny.drive} 3 r"],
                         kitti_tiny.height, kitti_tiny.width, FRAMES, img_ext=".png")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    inputs = prepare_batch(batch, torch.device("cpu"))
    assert inputs[("color", "s", 2)].shape == (2, 3, kitti_tiny.height // 4, kitti_tiny.width // 4)
    assert inputs[("K", 0)][0, 0, 0].item() == pytest.approx(0.58 * kitti_tiny.width)
    assert inputs["stereo_T"][:, 0, 3].tolist() == pytest.approx([-0.1, 0.1])


def test_frames_with_different_content_get_the_same_jitter():
    """Jittering [x, y] together equals jittering x alone and y alone with the same random draws."""
    x, y = torch.rand(6, 1, 3, 16, 16), torch.rand(6, 1, 3, 16, 16)
    both = color_augment(torch.cat([x, y], 1), torch.Generator().manual_seed(3))
    only_x = color_augment(x, torch.Generator().manual_seed(3))
    only_y = color_augment(y, torch.Generator().manual_seed(3))
    torch.testing.assert_close(both[:, :1], only_x)
    torch.testing.assert_close(both[:, 1:], only_y)
    assert not torch.allclose(both, torch.cat([x, y], 1))


def pillow_pyramid(image: np.ndarray, num_scales: int = 4) -> list[np.ndarray]:
    """Monodepth2's pyramid: each level a PIL LANCZOS resize of the previous one (uint8 HxWx3)."""
    h, w = image.shape[:2]
    levels = [Image.fromarray(image)]
    for s in range(1, num_scales):
        levels.append(levels[-1].resize((w // 2 ** s, h // 2 ** s), Image.Resampling.LANCZOS))
    return [np.asarray(level, dtype=np.float64) for level in levels]


def textured_frame(cam_x: float, h: int = 96, w: int = 160) -> np.ndarray:
    return np.round(render_plane(h, w, cam_x).transpose(1, 2, 0) * 255).astype(np.uint8)


def test_lanczos_weights_rows_sum_to_one_and_same_size_is_identity():
    w = lanczos_weights(50, 23).numpy()
    assert np.allclose(w.sum(1), 1.0)
    assert np.allclose(lanczos_weights(17, 17).numpy(), np.eye(17), atol=1e-12)  # sinc is 0 at other integers
    # Halving: the kernel spans 2 x 3 input pixels each side of the centre (antialiasing), not 3.
    assert np.count_nonzero(lanczos_weights(64, 32).numpy()[16]) == 12


@pytest.mark.parametrize("kind", ["texture", "noise"])
def test_pyramid_matches_monodepth2_pillow_lanczos(kind):
    if kind == "noise":  # the hardest case for a resampler: every frequency present
        frame = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    else:
        frame = textured_frame(0.0)
    ref = pillow_pyramid(frame)
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    ours = [lvl[0].permute(1, 2, 0).numpy() * 255 for lvl in pyramid(image, 4)]
    bilinear = [F.interpolate(image, size=r.shape[:2], mode="bilinear", align_corners=False, antialias=True)[0]
                .permute(1, 2, 0).numpy() * 255 for r in ref]
    for s in range(1, 4):
        assert ours[s].shape == ref[s].shape
        err = np.abs(ours[s] - ref[s])
        assert err.mean() < 0.05 and err.max() <= 1.0 + 1e-4, s  # measured: <= 0.02 mean, 1 grey level max
        # Negative control: the antialiased bilinear pyramid (used before) is 0.7-9 grey levels away.
        assert np.abs(bilinear[s] - ref[s]).mean() > 0.5, s


def test_v1_multiscale_photometric_loss_matches_the_pillow_pyramid():
    """The per-scale loss Monodepth2 computes with --v1_multiscale (target vs a source at each scale's own
    resolution) is within 1 % with this pyramid, at the same images."""
    target, source = textured_frame(0.0), textured_frame(0.05)
    ref_t, ref_s = pillow_pyramid(target), pillow_pyramid(source)
    ours_t, ours_s = (pyramid(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255, 4)
                      for f in (target, source))
    for s in range(4):
        ref = photometric_error(torch.from_numpy(ref_s[s]).permute(2, 0, 1)[None].float() / 255,
                                torch.from_numpy(ref_t[s]).permute(2, 0, 1)[None].float() / 255).mean()
        ours = photometric_error(ours_s[s], ours_t[s]).mean()
        assert float(ours) == pytest.approx(float(ref), rel=0.01), s
