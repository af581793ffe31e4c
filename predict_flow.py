"""See the flow a pretrain_flow.py (GeoPt) model predicts between two images: a colour-wheel PNG and a .flo file.

    python predict_flow.py --image_pair frame_t.png frame_t1.png --load_weights_folder runs/geopt/models/weights_19 \\
        --out_dir flow_out/

Writes <out_dir>/<first image's name>_flow.png (Middlebury colour coding: hue = direction, saturation = speed,
scaled to the largest motion; white = still) and <first image's name>_flow.flo (Middlebury .flo, float32 u, v in
pixels of the first image, flow from the first image to the second), at the first image's size. Existing outputs
are refused unless --overwrite. For scores over many frames use evaluate_flow.py (its --out_dir saves the same
two files for every evaluated pair).
"""
import argparse

from monodepth2_geopt.errors import run_cli


def main(argv=None):
    from monodepth2_geopt.flow import predict_image_pair
    from monodepth2_geopt.utils import pick_device

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_pair", nargs=2, required=True, metavar=("FIRST", "SECOND"),
                   help="two frames of the same size; the flow goes from FIRST to SECOND")
    p.add_argument("--load_weights_folder", required=True,
                   help="a weights folder written by pretrain_flow.py (encoder.pth, motion_encoder.pth, flow.pth)")
    p.add_argument("--out_dir", required=True, help="folder for <name>_flow.png and <name>_flow.flo")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--no_cuda", action="store_true", help="run on the CPU even when CUDA is available")
    a = p.parse_args(argv)
    result = predict_image_pair(a.load_weights_folder, a.image_pair[0], a.image_pair[1], a.out_dir, a.overwrite,
                                pick_device(a.no_cuda))
    flow = result["flow"]
    speed = flow.norm(dim=0)
    h, w = result["model_size"]
    print(f"flow {a.image_pair[0]} -> {a.image_pair[1]} (predicted at {w}x{h}, written at {flow.shape[2]}x"
          f"{flow.shape[1]}): mean {float(speed.mean()):.2f} px, max {float(speed.max()):.2f} px")
    print(f"wrote {result['png']}\nwrote {result['flo']}")


if __name__ == "__main__":
    run_cli(main)
