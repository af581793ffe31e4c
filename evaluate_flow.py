"""Does a pretrain_flow.py model learn motion? Flow EPE / Fl-all and the GeoPt diagnostics, as one table.

    python evaluate_flow.py --load_weights_folder runs/geopt/models/weights_19 --flow_eval_path synthetic/
    python evaluate_flow.py --load_weights_folder ... --flow_eval_path kitti_flow_2015/training   # flow_occ/
    python evaluate_flow.py --load_weights_folder ... --flow_eval_path frames/ --json diag.json   # real video
    python evaluate_flow.py ... --flow_eval_split synthetic/splits/test_files.txt
    python evaluate_flow.py ... --flow_eval_path frames/ --out_dir flows/   # also save every pair's flow

A folder with KITTI-format flow ground truth (<drive>/flow/image_02/*.png or flow_occ/) is scored against it.
A folder of frames without ground truth (e.g. extract_frames.py output; its val_files.txt when present) is
scored against scikit-image's TV-L1 flow with a forward-backward check: a classical *reference*, not truth.
Latent sensitivity, direction cosine and structure usage need no ground truth (see flow_diagnostics.py).
--out_dir writes the predicted flow t -> t+1 of each evaluated frame (colour-wheel PNG and Middlebury .flo, at the
model's input size, named after the frame's path under --flow_eval_path). For two images of your own, use
predict_flow.py --image_pair A B.
"""
import json
from pathlib import Path

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.fileio import atomic_write_text
from monodepth2_geopt.splits import refuse_existing


def main():
    from monodepth2_geopt import flow_diagnostics as fd
    from monodepth2_geopt.flow import find_flow_pairs, plan_flow_outputs, predict_flow_pair, save_flow_outputs
    from monodepth2_geopt.model_loading import load_flow_model
    from monodepth2_geopt.utils import pick_device

    opt = MonodepthOptions(task="flow").parse()
    if not opt.load_weights_folder or not opt.flow_eval_path:
        raise InputError("evaluate_flow.py needs --load_weights_folder <weights folder> and --flow_eval_path "
                         "<folder with flow ground truth, or of video frames>")
    if opt.json and Path(opt.json).is_dir():
        raise InputError(f"--json {opt.json} is a folder; give a file name such as diagnostics.json")
    if opt.json:
        refuse_existing([opt.json], opt.overwrite)  # before the (long) evaluation
    device = pick_device(opt.no_cuda)
    encoder, motion, decoder, meta = load_flow_model(opt.load_weights_folder, device)
    height, width = int(meta.get("height", opt.height)), int(meta.get("width", opt.width))
    path = Path(opt.flow_eval_path).expanduser()
    if not path.is_dir():
        raise InputError(f"--flow_eval_path {path} is not a folder")
    progress = not opt.no_progress
    if fd.has_flow_ground_truth(path):
        targets = [t for t, _, _ in find_flow_pairs(path, opt.flow_eval_split)[:opt.flow_eval_max]]
        outputs = plan_flow_outputs(opt.out_dir, path, targets, opt.overwrite)  # refused here, before the work
        samples = fd.ground_truth_samples(path, opt.flow_eval_split, height, width, opt.flow_eval_max)
        kind = "ground_truth"
    else:
        frames = fd.frames_dataset(path, opt.flow_eval_split, height, width, opt.frame_stride)
        targets = [frames.get_paths(i)[0] for i in fd.sample_indices(len(frames), opt.flow_eval_max)]
        outputs = plan_flow_outputs(opt.out_dir, path, targets, opt.overwrite)
        samples = fd.video_samples(frames, opt.flow_eval_max, progress=progress)
        kind = "reference"
    diag = fd.diagnose_samples(encoder, motion, decoder, samples, kind, device, progress=progress)
    print(f"{len(samples)} images from {path} at {width}x{height}")
    print(fd.format_table(diag))
    if outputs:
        for (png, flo), (target, sources, _) in zip(outputs, samples):
            save_flow_outputs(predict_flow_pair(encoder, motion, decoder, target.to(device), sources[1].to(device)),
                              png, flo)
        print(f"wrote {len(outputs)} flows t -> t+1 (<frame>_flow.png colour wheel, <frame>_flow.flo) to {opt.out_dir}")
    if opt.json:
        result = {k: diag[k] for k in fd.DIAGNOSTIC_KEYS}
        result.update(epe_kind=diag["epe_kind"], num_images=len(samples), weights=str(opt.load_weights_folder),
                      data=str(path), height=height, width=width)
        atomic_write_text(opt.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {opt.json}")


if __name__ == "__main__":
    run_cli(main)
