"""EPE and Fl-all of a pretrain_flow.py model against KITTI-format ground-truth flow (frame t -> t+1).

    python evaluate_flow.py --load_weights_folder runs/geopt/models/weights_19 --flow_eval_path synthetic/
    python evaluate_flow.py --load_weights_folder ... --flow_eval_path kitti_flow_2015/training   # flow_occ/
    python evaluate_flow.py ... --flow_eval_split synthetic/splits/test_files.txt
"""
from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.flow import evaluate_flow_model
    from monodepth2_geopt.utils import pick_device

    opt = MonodepthOptions().parse()
    if not opt.load_weights_folder or not opt.flow_eval_path:
        raise InputError("evaluate_flow.py needs --load_weights_folder <weights folder> and --flow_eval_path <GT dir>")
    metrics = evaluate_flow_model(opt.load_weights_folder, opt.flow_eval_path, opt.flow_eval_split,
                                  pick_device(opt.no_cuda))
    print(f"{metrics['num_pairs']} pairs | EPE {metrics['epe']:.3f} px | Fl-all {metrics['fl_all']:.2f} % | "
          f"zero-flow EPE {metrics['zero_epe']:.3f} px")


if __name__ == "__main__":
    run_cli(main)
