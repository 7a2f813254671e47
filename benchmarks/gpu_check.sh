#!/usr/bin/env bash
# One GPU, under 10 minutes: MiniMaxAD's speed table at 256 px batch 16 (fp32, channels-last, bf16, fp16 and
# the authors' network when $MINIMAXAD_AUTHORS_REPO is a checkout of theirs), the training step's cost
# (fp32, bf16-mixed, 16-mixed), and one epoch of the demo through anomalib's Engine (fit, test, torch / ONNX /
# OpenVINO export) in 32 and bf16-mixed. Every step writes its JSON under --out-dir (default
# benchmarks/results/gpu_check_<utc>); the exit status is 1 if any step failed, after all of them ran.
#
#   bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --dry-run    # the same steps on the CPU at toy sizes (what CI checks)
#   bash benchmarks/gpu_check.sh --compile    # also the opt-in torch.compile rows
#
# PYTHON picks the interpreter (default: the checkout's .venv). Nothing is downloaded.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$here/../.venv/bin/python}"
dry_run=0
compile=()
out_dir="$here/results/gpu_check_$(date -u +%Y%m%dT%H%M%SZ)"
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --compile) compile=(--compile) ;;
        --out-dir) out_dir="$2"; shift ;;
        -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | cut -c3-; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((dry_run)); then
    device=cpu
    # One configuration of each step, toy sizes: it checks that every step runs and writes its JSON.
    speed=(--quick --sizes 64 --batches 2 --threads 1 --models minimaxad_fused_cl,minimaxad_fused_bf16)
    train=(--quick --threads 1 --models minimaxad --precisions bf16-mixed --memory-formats channels_last)
    engine=(--quick --threads 1 --exports torch)
    engine_precisions=(32)
else
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check.sh: torch sees no CUDA device; use --dry-run to check the steps on the CPU" >&2
        exit 2
    fi
    device=cuda
    rows=minimaxad_eager,minimaxad_fused,minimaxad_fused_cl,minimaxad_fused_bf16,minimaxad_fused_fp16
    rows+=,authors_reparameterized,minimaxad_onnxruntime,reverse_distillation
    speed=(--sizes 256 --batches 16 --repeats 20 --throughput-repeats 20 --models "$rows")
    train=(--batches 16 --size 256 --steps 10 --precisions fp32,bf16-mixed,16-mixed)
    train+=(--memory-formats channels_last,contiguous)
    engine=(--image-size 256 --batch 16)
    engine_precisions=(32 bf16-mixed)
fi
mkdir -p "$out_dir"
failed=()
run_step() {
    local name="$1"
    shift
    printf '\n=== gpu_check [%4ds] %s\n' "$SECONDS" "$name"
    if ! "$PYTHON" "$@" --out-dir "$out_dir"; then
        failed+=("$name")
    fi
}

run_step "speed ($device)" "$here/speed.py" --devices "$device" "${speed[@]}" "${compile[@]}"
run_step "training step ($device)" "$here/train_cost.py" --device "$device" "${train[@]}" "${compile[@]}"
for precision in "${engine_precisions[@]}"; do
    run_step "Engine fit/test/export ($device, $precision)" "$here/engine_check.py" --accelerator "$device" \
        --precision "$precision" "${engine[@]}"
done

# speed.py and train_cost.py record a row that could not run instead of stopping: here that is a failure,
# except the authors' rows without a checkout of their repository.
printf '\n=== gpu_check [%4ds] rows that did not run\n' "$SECONDS"
if ! "$PYTHON" - "$out_dir" <<'PY'
import json
import sys
from pathlib import Path

problems = []
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    result = json.loads(path.read_text(encoding="utf-8"))
    for row in result.get("skipped", []):  # speed.py
        print(f"{path.name}: {row['row']} skipped: {row['reason']}")
        if row["row"] != "authors_reparameterized":
            problems.append(row["row"])
    for row in result.get("results", []) if path.name.startswith("train_cost") else []:
        for status in ("skipped", "error"):
            if status in row:
                print(f"{path.name}: {row['model']} {row['precision']} {row['memory_format']} {status}: {row[status]}")
                if status == "error" or row["model"] != "authors":
                    problems.append(f"train {row['model']} {row['precision']} {row['memory_format']}")
sys.exit(1 if problems else 0)
PY
then
    failed+=("rows that did not run (above)")
fi

printf '\n=== gpu_check [%4ds] done; JSON in %s\n' "$SECONDS" "$out_dir"
ls "$out_dir"
if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
