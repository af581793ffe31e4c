"""monodepth2_geopt.visualize: flow colour coding (against Baker et al.'s reference), disparity colour maps,
display normalisation."""
import numpy as np
import torch

from monodepth2_geopt.visualize import colormap_disparity, colorize_disparity, flow_to_color, normalize_image


# ---------------------------------------------------------------------------------------------- flow
def test_flow_to_color_zero_is_white_and_directions_match_the_wheel():
    assert torch.equal(flow_to_color(torch.zeros(2, 5, 7)), torch.ones(3, 5, 7))
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, :, 0, 0] = torch.tensor([1.0, 0.0])   # right
    flow[0, :, 0, 1] = torch.tensor([-1.0, 0.0])  # left
    flow[0, :, 0, 2] = torch.tensor([0.0, 1.0])   # down
    flow[0, :, 0, 3] = torch.tensor([0.0, -1.0])  # up
    rgb = flow_to_color(flow)[0, :, 0].T  # [4, 3]
    assert rgb.shape == (4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # Against Baker et al.'s reference code (below); at full saturation: right -> red, left -> cyan-blue.
    torch.testing.assert_close(rgb, torch.tensor(_reference_colors(flow[0].numpy())), atol=1e-6, rtol=0)
    assert rgb[0].argmax() == 0 and rgb[1, 0] < 0.1  # right is red; left has no red
    # magnitude beyond max_flow is darkened, not wrapped
    far = flow_to_color(torch.tensor([[[10.0]], [[0.0]]]), max_flow=1.0)
    near = flow_to_color(torch.tensor([[[1.0]], [[0.0]]]), max_flow=1.0)
    torch.testing.assert_close(far, near * 0.75)


def _reference_colors(flow):
    """Baker et al.'s flow_uv_to_colors (as in RAFT core/utils/flow_viz.py), written out in NumPy."""
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    wheel = np.zeros((55, 3))
    col = 0
    wheel[0:ry, 0] = 255
    wheel[0:ry, 1] = np.floor(255 * np.arange(ry) / ry)
    col += ry
    wheel[col:col + yg, 0] = 255 - np.floor(255 * np.arange(yg) / yg)
    wheel[col:col + yg, 1] = 255
    col += yg
    wheel[col:col + gc, 1] = 255
    wheel[col:col + gc, 2] = np.floor(255 * np.arange(gc) / gc)
    col += gc
    wheel[col:col + cb, 1] = 255 - np.floor(255 * np.arange(cb) / cb)
    wheel[col:col + cb, 2] = 255
    col += cb
    wheel[col:col + bm, 2] = 255
    wheel[col:col + bm, 0] = np.floor(255 * np.arange(bm) / bm)
    col += bm
    wheel[col:col + mr, 2] = 255 - np.floor(255 * np.arange(mr) / mr)
    wheel[col:col + mr, 0] = 255
    u, v = flow[0].ravel(), flow[1].ravel()
    rad = np.sqrt(u ** 2 + v ** 2)
    rad_max = rad.max()
    u, v, rad = u / rad_max, v / rad_max, rad / rad_max
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * 54
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % 55
    f = fk - k0
    out = np.zeros((u.size, 3))
    for i in range(3):
        c = (1 - f) * wheel[k0, i] / 255 + f * wheel[k1, i] / 255
        c = np.where(rad <= 1, 1 - rad * (1 - c), c * 0.75)
        out[:, i] = c
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------- disparity
def test_colormap_disparity_spans_min_to_95th_percentile():
    disp = np.linspace(0.0, 1.0, 101).reshape(1, 101)
    rgb = colormap_disparity(disp)
    assert rgb.shape == (1, 101, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[0, 95], rgb[0, 100])  # at and above the 95th percentile: the top colour
    assert not np.array_equal(rgb[0, 0], rgb[0, 95]) and rgb[0, 0].sum() < rgb[0, 95].sum()  # magma: dark -> light
    assert np.array_equal(colormap_disparity(np.full((2, 3), 0.4)), colormap_disparity(np.zeros((2, 3))))  # flat


def test_colorize_disparity_resizes_to_pil_size():
    disp = np.random.default_rng(0).uniform(0.1, 1.0, (1, 1, 4, 6)).astype(np.float32)
    out = colorize_disparity(disp, (12, 8))  # (width, height)
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    assert np.array_equal(colorize_disparity(disp, (6, 4)), colormap_disparity(disp[0, 0]))  # same size: no resize


# ---------------------------------------------------------------------------------------------- any tensor
def test_normalize_image_min_max_and_constant():
    x = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    torch.testing.assert_close(normalize_image(x), torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(normalize_image(torch.full((2, 2), 3.0)), torch.zeros(2, 2))
