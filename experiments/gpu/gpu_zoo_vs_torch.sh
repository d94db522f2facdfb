#!/usr/bin/env bash
# The zoo on one GPU: jaxcnn (bf16) vs the same nets in PyTorch (channels-last + bf16 autocast,
# eager and torch.compile), same batch size, same CIFAR-10 arrays held on the device, one call.
#
#   bash experiments/gpu/gpu_zoo_vs_torch.sh [EPOCHS] [BATCH]      # defaults: 3 epochs, batch 512
#
# Needs (git-ignored, carried with the tree, e.g. the device tool's
# run(command='bash experiments/gpu/gpu_zoo_vs_torch.sh', carry=['.data'])):
#   .data/cifar10_jpeg_train.tar.gz   cp ../shared/data/cifar10_jpeg_train.tar.gz .data/  (16 MB)
# On the GPU machine (jax with CUDA, torch with CUDA, PIL; no TF/tfds, no network needed):
#   1. decodes the tarball once into .data/cifar10_speedrun.npz (train[:45000] / train[45000:]);
#   2. jaxcnn: the CLI with jaxcnn/configs/{resnet20,preact_resnet18}_cifar10.py (SGD momentum,
#      crop+flip on the device, bfloat16 on an accelerator, the split on the device as uint8),
#      EPOCHS epochs, no checkpoints/plots; images/s per epoch from its metrics.jsonl;
#   3. PyTorch: experiments/peers/torch_zoo_train.py, the same recipe, eager and torch.compile;
#   4. prints one table: median images/s and ms/step over the epochs after the first (which
#      holds compilation for jaxcnn and torch.compile), and jaxcnn / PyTorch's best.
# The script prints jaxcnn / PyTorch's best for both nets (BENCHMARKS.md, "The model zoo").
set -euo pipefail
EPOCHS="${1:-3}"
BATCH="${2:-512}"
cd "$(dirname "$0")/../.."
mkdir -p .data
NPZ=.data/cifar10_speedrun.npz
TAR=.data/cifar10_jpeg_train.tar.gz
[ -f "$TAR" ] || TAR=../shared/data/cifar10_jpeg_train.tar.gz
if [ ! -f "$NPZ" ]; then
  [ -f "$TAR" ] || { echo "error: no $NPZ and no CIFAR-10 JPEG tarball in .data/ (see the header)"; exit 1; }
  python -m experiments.gpu.gpu_export_cifar --image-folder "$TAR" --out "$NPZ"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python -c "import jax, torch; print('jax', jax.__version__, jax.devices()[0].device_kind, '| torch', torch.__version__)"

for NET in resnet20 preact_resnet18; do
  echo "== jaxcnn $NET, $EPOCHS epochs, batch $BATCH"
  rm -rf ".data/zoo_$NET"
  python -m experiments.train --config "jaxcnn/configs/${NET}_cifar10.py" --workdir ".data/zoo_$NET" \
      --config.num_epochs="$EPOCHS" --config.batch_size="$BATCH" \
      --config.data.image_folder="$TAR" --config.plots=False --config.progress=False \
      --config.checkpoint_every_epoch=False --config.checkpoint_every_steps=0
done
echo "== PyTorch (channels-last, bf16 autocast), eager and torch.compile"
python -m experiments.peers.torch_zoo_train --npz "$NPZ" --models resnet20 preact_resnet18 \
    --modes eager compile --epochs "$EPOCHS" --batch-size "$BATCH" --json .data/zoo_torch.json

python - "$BATCH" <<'PY'
import json, statistics as st, sys
batch = int(sys.argv[1])
torch = json.load(open(".data/zoo_torch.json"))
print(f"\nbatch {batch}; median over epochs 2..N (epoch 1 holds compilation)")
print(f"{'net':16s} {'jaxcnn img/s':>13s} {'ms/step':>8s} {'torch eager':>12s} {'torch compile':>14s} {'jaxcnn / best torch':>20s}")
for net in ("resnet20", "preact_resnet18"):
  recs = [json.loads(l) for l in open(f".data/zoo_{net}/metrics.jsonl")]
  later = recs[1:] or recs
  jips = st.median(r["train_images_per_sec"] for r in later)
  eager = torch[f"{net}/eager"]["images_per_sec"]
  comp = torch[f"{net}/compile"]["images_per_sec"]
  print(f"{net:16s} {jips:13,.0f} {1000 * batch / jips:8.2f} {eager:12,.0f} {comp:14,.0f} {jips / max(eager, comp):19.2f}x")
PY
if [ -n "${OUT:-}" ]; then cp .data/zoo_torch.json "$OUT"/; for n in resnet20 preact_resnet18; do cp ".data/zoo_$n/metrics.jsonl" "$OUT/zoo_$n.jsonl"; done; fi
