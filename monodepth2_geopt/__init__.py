"""Monodepth2 on modern PyTorch, plus Geometric Pretraining. The Python API::

    from monodepth2_geopt import load_depth_model
    model = load_depth_model(weights_folder, device="cpu")
    depth = model.infer_image(rgb)  # uint8 [H, W, 3] RGB -> float32 [H, W]

Attributes are imported on first use, so ``import monodepth2_geopt.options`` stays light.
"""

_API = {"load_depth_model": "monodepth2_geopt.model_loading", "DepthModel": "monodepth2_geopt.depth_model"}


def __getattr__(name: str):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'monodepth2_geopt' has no attribute {name!r}")


__all__ = list(_API)
