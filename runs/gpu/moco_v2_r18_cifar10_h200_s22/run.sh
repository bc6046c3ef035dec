#!/bin/bash
# On the device: bash .devdata/run.sh   (needs $OUT; the whole command must end within LIMIT s)
LIMIT=${LIMIT:-590}
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( LIMIT - $(el) )); }
export PYTHONUNBUFFERED=1 ZOO_HOME=/tmp/zoohome
mkdir -p /tmp/res
exec > >(tee /tmp/res/device.log) 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
lscpu | grep "Model name"
python3 -c "import torch, sys; print(sys.version, torch.__version__, torch.cuda.is_available())"
if [ -z "$SKIP_INSTALL" ]; then
  echo "zoo onto PYTHONPATH (a pip install of the repo did not import there)"
  mkdir -p /tmp/pp && cp -r zoo /tmp/pp/ && cp -r training /tmp/pp/zoo/training && cp -r app /tmp/pp/zoo/app
  export PYTHONPATH=/tmp/pp
fi
DATA=${DATA:-/tmp/cifar10}
[ "$DATA" = /tmp/cifar10 ] && python3 .devdata/unpack.py /tmp/cifar10
echo "setup done at $(el) s"
REPO=$(pwd); R=$REPO/training/recipes/moco_v2_r18_cifar10.yaml
cd /tmp  # not the repo: its zoo/ (without training/) would shadow the copy on PYTHONPATH
timeout 150 python3 -m zoo.training $R data.path=$DATA $EXTRA run.out_dir=/tmp/probe train.max_steps=50 \
  run.export=false run.knn_every_epochs=0 run.log_every_steps=10
echo "probe done at $(el) s"
E=$(python3 $REPO/.devdata/epochs.py /tmp/probe/metrics.csv $(( $(left) - 150 )))
echo "epochs: $E"
timeout $(( $(left) - 100 )) python3 -m zoo.training $R data.path=$DATA $EXTRA run.out_dir=/tmp/run \
  train.epochs=$E run.knn_every_epochs=10; rc=$?
echo "train done at $(el) s (rc $rc)"
if [ -f /tmp/run/export/model.safetensors ] && [ $(left) -gt 230 ]; then
  mkdir -p /tmp/key && cp /tmp/run/checkpoint.pt /tmp/run/recipe.yaml /tmp/key/
  timeout $(( $(left) - 150 )) python3 -m zoo.training $R data.path=$DATA $EXTRA run.out_dir=/tmp/key \
    train.epochs=$E run.knn_every_epochs=10 run.export_backbone=momentum --resume
  echo "key export done at $(el) s"
fi
timeout $(( $(left) - 25 )) python3 $REPO/.devdata/post.py $(( $(left) - 100 )) $DATA
echo "post done at $(el) s"
cd /tmp && mkdir -p pack/run && cp run/*.csv run/recipe.yaml pack/run/ 2>/dev/null
cp -r run/export pack/export 2>/dev/null; cp key/export/config.json pack/key_config.json 2>/dev/null
cp key/knn.csv pack/key_knn.csv 2>/dev/null; cp probe/metrics.csv pack/probe_metrics.csv 2>/dev/null
cp res/* pack/ 2>/dev/null
tar cf - pack | split -b 15m - $OUT/result.tar.
ls -la $OUT; echo "all done at $(el) s"
