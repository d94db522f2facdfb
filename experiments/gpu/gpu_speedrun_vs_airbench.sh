#!/usr/bin/env bash
# jaxcnn's speedrun vs airbench94_muon on one GPU, on the same CIFAR-10 arrays, in one call.
#
#   bash experiments/gpu/gpu_speedrun_vs_airbench.sh [RUNS]        # RUNS defaults to 25
#
# Needs (git-ignored, prepared once on the development machine, then carried with the tree,
# e.g. the device tool's run(command='bash experiments/gpu/gpu_speedrun_vs_airbench.sh',
# carry=['.data', '.peers'])):
#   .data/cifar10_jpeg_train.tar.gz   cp ../shared/data/cifar10_jpeg_train.tar.gz .data/  (16 MB)
#   .peers/airbench/airbench94_muon.py  from github.com/KellerJordan/cifar10-airbench
#                                       (commit 096d14d or later; unmodified)
# On the GPU machine (jax with CUDA, torch with CUDA, PIL; no TF/tfds, no network needed):
#   1. decodes the tarball once into .data/cifar10_speedrun.npz (train[:45000] / train[45000:]);
#   2. jaxcnn: python -m experiments.speedrun (config airbench94, bf16) for RUNS seeds;
#   3. airbench94_muon.py with only its data loading patched to read the same .npz
#      (experiments/gpu/gpu_airbench_npz.py), RUNS runs after its warm-up run;
#   4. prints both mean accuracies and mean times, and the ratios.
# Both time the same thing: whitening init + training + 6-view TTA evaluation, compilation
# excluded, data already on the GPU. Results: .data/jaxcnn.json, .data/airbench.json (and
# copies in $OUT when set).
set -euo pipefail
RUNS="${1:-25}"
cd "$(dirname "$0")/../.."
mkdir -p .data
NPZ=.data/cifar10_speedrun.npz
if [ ! -f "$NPZ" ]; then
  TAR=.data/cifar10_jpeg_train.tar.gz
  [ -f "$TAR" ] || TAR=../shared/data/cifar10_jpeg_train.tar.gz
  [ -f "$TAR" ] || { echo "error: no $NPZ and no CIFAR-10 JPEG tarball in .data/ (see the header)"; exit 1; }
  python -m experiments.gpu.gpu_export_cifar --image-folder "$TAR" --out "$NPZ"
fi
[ -f .peers/airbench/airbench94_muon.py ] || {
  echo "error: .peers/airbench/airbench94_muon.py is missing (see the header)"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python -c "import jax, torch; print('jax', jax.__version__, jax.devices()[0].device_kind, '| torch', torch.__version__)"

echo "== jaxcnn speedrun (airbench94 recipe), $RUNS runs"
python -m experiments.speedrun --config speedrun --runs "$RUNS" \
    --npz "$NPZ" --json .data/jaxcnn.json
echo "== airbench94_muon.py (data loading patched to read $NPZ), $RUNS runs"
python -m experiments.gpu.gpu_airbench_npz --source .peers/airbench/airbench94_muon.py \
    --npz "$NPZ" --runs "$RUNS" --json .data/airbench.json

python - <<'PY'
import json, statistics as st
j = json.load(open(".data/jaxcnn.json"))
a = json.load(open(".data/airbench.json"))["runs"]
ja, js = [r["accuracy"] for r in j["runs"]], [r["seconds"] for r in j["runs"]]
aa, as_ = [r["acc"] for r in a], [r["seconds"] for r in a]
sd = lambda x: st.stdev(x) if len(x) > 1 else 0.0
print(f"same data: {j['source']}")
print(f"jaxcnn   : acc {100*st.mean(ja):.2f} ± {100*sd(ja):.2f}%  time {st.mean(js):.3f} ± {sd(js):.3f} s  ({len(ja)} runs; compile {j['runs'][0]['compile_seconds']:.1f} s excluded)")
print(f"airbench : acc {100*st.mean(aa):.2f} ± {100*sd(aa):.2f}%  time {st.mean(as_):.3f} ± {sd(as_):.3f} s  ({len(aa)} runs)")
print(f"ratio jaxcnn/airbench: time {st.mean(js)/st.mean(as_):.3f}x, accuracy {100*(st.mean(ja)-st.mean(aa)):+.2f} points")
PY
if [ -n "${OUT:-}" ]; then cp .data/jaxcnn.json .data/airbench.json "$OUT"/; fi
