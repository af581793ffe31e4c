#!/usr/bin/env bash
# Every GPU measurement of benchmarks/RESULTS.md in one call (about 9 minutes on one H200):
#   1. GeoPt (issue 11), side by side on the one GPU: the real-video pretext at 2000 steps (3 seeds), the
#      pretext ablations on the synthetic world (3 seeds each), and the transfer with controls (5 seeds, M and S);
#   2. alone on the GPU, so the timings are clean: training speed at 640x192, batch 12 (torch.compile left out:
#      its compilation would take most of the budget).
# Usage, from the repository root:  bash benchmarks/run_gpu.sh [OUT_DIR]
# Optional inputs: KITTI_SIZE_DATA (a KITTI-layout folder of 1242x375 JPEGs with splits/, else generated, which
# takes minutes) and REAL_FRAMES (extract_frames.py output of ../shared/data/videos at 10 fps, stride 2; else
# extracted here, which needs PyAV). Logs, RESULTS.md and the transfer cache are copied to OUT_DIR.
set -u
OUT_DIR=${1:-${OUT:-/tmp/gpu_out}}
WORK=${WORK:-/tmp/gpu_work}
mkdir -p "$OUT_DIR" "$WORK/real"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
GEOPT_LIMIT=${GEOPT_LIMIT:-330}
SPEED_LIMIT=${SPEED_LIMIT:-170}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT_DIR/machine.txt" 2>&1
python -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))" \
    >> "$OUT_DIR/machine.txt" 2>&1
if [ -n "${REAL_FRAMES:-}" ] && [ ! -e "$WORK/real/real_frames_stride2" ]; then
    cp -r "$REAL_FRAMES" "$WORK/real/real_frames_stride2"
fi

start=$(date +%s)
timeout "$GEOPT_LIMIT" python benchmarks/bench_geopt.py --part transfer --cuda --jobs 5 --seeds 0 1 2 3 4 \
    --modes M S --work "$WORK/transfer" > "$OUT_DIR/transfer.log" 2>&1 &
timeout "$GEOPT_LIMIT" python benchmarks/bench_geopt.py --part real --cuda --jobs 3 --pretext_seeds 0 1 2 \
    --steps 2000 --every 250 --work "$WORK/real" > "$OUT_DIR/real.log" 2>&1 &
timeout "$GEOPT_LIMIT" python benchmarks/bench_geopt.py --part pretext --cuda --jobs 6 --pretext_seeds 0 1 2 \
    --recipes default no_bottleneck film resnet_motion min_reprojection previous --steps 300 --every 100 \
    --work "$WORK/pretext" > "$OUT_DIR/pretext.log" 2>&1 &
wait
echo "GeoPt phase: $(( $(date +%s) - start )) s" >> "$OUT_DIR/machine.txt"
cp benchmarks/RESULTS.md "$OUT_DIR/" 2>/dev/null
cp "$WORK/transfer/transfer_results.json" "$OUT_DIR/" 2>/dev/null

start=$(date +%s)
timeout "$SPEED_LIMIT" python benchmarks/bench_speed.py --no_compile --steps 30 --warmup 5 --write_results \
    ${KITTI_SIZE_DATA:+--data_path "$KITTI_SIZE_DATA"} > "$OUT_DIR/speed.log" 2>&1
echo "speed phase: $(( $(date +%s) - start )) s" >> "$OUT_DIR/machine.txt"
cp benchmarks/RESULTS.md "$OUT_DIR/" 2>/dev/null
exit 0
