"""torch.hub entry points: ``torch.hub.load(repo_dir, "depth_model", weights_folder=..., source="local")``.

Returns the same ``DepthModel`` as ``monodepth2_geopt.load_depth_model`` (``model.infer_image(rgb)``).
"""
dependencies = ["torch", "torchvision", "numpy", "PIL"]


def depth_model(weights_folder=None, model_name=None, device="cpu", models_dir=None):
    """Monodepth2-GeoPt depth network from ``weights_folder`` (a ``models/weights_<epoch>`` folder written by
    train.py, or an unzipped Monodepth2 release), or the released Monodepth2 model ``model_name`` (e.g.
    ``"mono+stereo_640x192"``, looked up in ``models_dir`` (default ``models/`` of this repository) and downloaded
    there when missing). ``device``: where the model runs."""
    from monodepth2_geopt.errors import InputError
    from monodepth2_geopt.inference import DEFAULT_MODELS_DIR, released_model_folder
    from monodepth2_geopt.model_loading import load_depth_model

    if (weights_folder is None) == (model_name is None):
        raise InputError("depth_model needs exactly one of weights_folder=... or model_name=...")
    if weights_folder is None:
        weights_folder = released_model_folder(model_name, models_dir or DEFAULT_MODELS_DIR)
    return load_depth_model(weights_folder, device)
