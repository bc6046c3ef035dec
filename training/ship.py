"""Ship a finished run with the project: weights installed with zoo, curves beside the cards.

    python -m zoo.training.ship runs/publish/simclr_r18q_cifar10 --name simclr-r18q-cifar10

reads the run's exported folder (``<run>/export``, fp32), rounds the weights to fp16 and
measures both with the protocols of ``zoo eval`` (weighted kNN k=20/T=0.07 and k=200/T=0.1,
linear probe, k-means NMI) on the run's dataset. The fp16 copy ships when no number moves by
more than ``--tolerance`` points, else the fp32 weights do. It writes

* ``zoo/weights/<name>.safetensors``: the shipped weights (atomically);
* ``model_cards/curves/<name>.png`` (+ ``.metrics.csv``, ``.knn.csv``): the training curves;
* ``<run>/ship.json``: the sha256, precision, both evaluations, the reproduce command and
  the budget, from which the ``register_model`` entry in ``zoo/pretrained.py`` is written.

The numbers recorded are those of the shipped file, measured exactly as
``zoo eval <name> --data DIR ...`` measures them once the entry is registered.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import platform
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import torch

import zoo
from zoo.encoder import Encoder
from zoo.folder import atomic_write_text, save_safetensors

#: Method names of the trainer -> the registry's (as upstream entries spell them).
REGISTRY_METHODS = {"moco_v2": "moco-v2", "moco_v3": "moco-v3", "barlow_twins": "barlowtwins"}

#: (metric key, protocol, k, temperature, ``zoo eval`` flags)
PROTOCOLS = (
    ("knn-k20", "knn", 20, 0.07, "-k 20 --temperature 0.07"),
    ("knn-k200", "knn", 200, 0.1, "-k 200 --temperature 0.1"),
    ("linear", "linear", 20, 0.07, "--protocol linear"),
    ("nmi", "cluster", 20, 0.07, "--protocol cluster"),
)


def measure(encoder: Encoder, data: str, test_split: str) -> dict[str, dict]:
    """Every protocol of :data:`PROTOCOLS` on ``data`` (cached features, as ``zoo eval``)."""
    from zoo.evaluate import evaluate

    results = {}
    for key, protocol, k, temperature, _ in PROTOCOLS:
        r = evaluate(encoder, data, protocol=protocol, test_split=test_split, k=k, temperature=temperature)
        results[key] = {
            "value": float(r["nmi"] if protocol == "cluster" else r["top1"]),
            "how": r["protocol"],
        }
    return results


def rounded_to_fp16(encoder: Encoder) -> tuple[Encoder, dict[str, torch.Tensor]]:
    """A copy of ``encoder`` whose floating-point weights went through fp16 (what loading the
    fp16 file gives), and that fp16 state dict."""
    import copy

    half = {k: v.half() if v.is_floating_point() else v for k, v in encoder.backbone.state_dict().items()}
    backbone = copy.deepcopy(encoder.backbone)
    backbone.load_state_dict(half, strict=True)  # fp16 values into the fp32 parameters
    return Encoder(backbone, encoder.arch, encoder.preprocess, encoder.entry), half


def run_minutes(log: Path) -> float:
    """Wall-clock minutes from the first line of a run's log to its last training step."""
    stamps = [
        (datetime.strptime(m.group(1), "%H:%M:%S"), " step " in line)
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if (m := re.match(r"\[(\d\d:\d\d:\d\d)\]", line))
    ]
    if not any(is_step for _, is_step in stamps):
        raise ValueError(f"{log}: no timestamped training steps")
    elapsed = last = timedelta()
    for (previous, _), (t, is_step) in itertools.pairwise(stamps):
        elapsed += (t - previous) % timedelta(days=1)  # runs may cross midnight
        if is_step:
            last = elapsed
    return round(last.total_seconds() / 60, 1)


def reproduce_command(export_dir: Path) -> str:
    """The ``zoo train`` line of the exported card, without the run's output folder."""
    card = (export_dir / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Reproduce with:\s*```bash\n(.+?)\n```", card, re.S)
    if not m:
        raise ValueError(f"{export_dir}/README.md: no 'Reproduce with' command")
    return " ".join(t for t in m.group(1).split() if not t.startswith("run.out_dir="))


def ship(
    run_dir: Path,
    name: str,
    *,
    data: str | None = None,
    test_split: str | None = None,
    tolerance: float = 0.2,
    weights_dir: Path = Path("zoo/weights"),
    cards_dir: Path = Path("model_cards"),
    log: Path | None = None,
) -> dict:
    from zoo.training.publish import plot_curves
    from zoo.training.recipe import load_recipe

    export_dir = run_dir / "export"
    recipe = load_recipe(export_dir / "recipe.yaml")
    data = data or recipe.data.path
    test_split = test_split or ("val" if (Path(data) / "val").is_dir() else "test")
    fp32 = zoo.load_folder(export_dir)
    fp16, half_state = rounded_to_fp16(fp32)
    measured = {"fp32": measure(fp32, data, test_split), "fp16": measure(fp16, data, test_split)}
    worst = max(abs(measured["fp16"][k]["value"] - measured["fp32"][k]["value"]) for k in measured["fp32"])
    precision = "fp16" if worst <= tolerance else "fp32"
    state = half_state if precision == "fp16" else fp32.backbone.state_dict()

    entry = dataclasses.replace(
        fp32.entry, name=name, method=REGISTRY_METHODS.get(recipe.method_name, recipe.method_name)
    )
    weights = save_safetensors(state, weights_dir / f"{name}.safetensors", entry)
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()

    curves = cards_dir / "curves"
    curves.mkdir(parents=True, exist_ok=True)
    plot_curves(run_dir, curves, title=name, file_name=f"{name}.png")
    for src in ("metrics.csv", "knn.csv"):
        if (run_dir / src).is_file():
            shutil.copyfile(run_dir / src, curves / f"{name}.{src}")

    command = reproduce_command(export_dir)
    progress = json.loads(torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"])["progress"]
    summary = {
        "name": name,
        "file": f"zoo:weights/{name}.safetensors",
        "sha256": sha256,
        "bytes": weights.stat().st_size,
        "precision": precision,
        "fp16_max_change": round(worst, 3),
        "measured": measured[precision],
        "measured_fp32": measured["fp32"],
        "measured_fp16": measured["fp16"],
        "eval_commands": {
            key: f"zoo eval {name} --data {data} --test-split {test_split} {flags}"
            for key, _, _, _, flags in PROTOCOLS
        },
        "training": {
            "recipe": recipe_of(command),
            "command": command,
            "epochs": recipe.train.epochs,
            "steps": progress["step"],
            "batch_size": recipe.train.batch_size,
            "minutes": run_minutes(log or run_dir.with_suffix(".log")),
            "threads": recipe.train.threads,
            "compile": recipe.train.compile,
            "machine": platform.machine(),
            "torch": torch.__version__,
        },
    }
    atomic_write_text(run_dir / "ship.json", json.dumps(summary, indent=2) + "\n")
    return summary


def recipe_of(command: str) -> str:
    """The recipe file a ``zoo train RECIPE ...`` command runs (a bare name is a published recipe)."""
    recipe = command.split()[2]
    return recipe if recipe.endswith((".yaml", ".yml")) else f"training/recipes/{recipe}.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.training.ship", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (with export/ and checkpoint.pt)")
    parser.add_argument("--name", required=True, help="registry name, <method>-<arch>-<dataset>")
    parser.add_argument("--data", default=None, help="dataset root (default: the recipe's data.path)")
    parser.add_argument("--test-split", default=None)
    parser.add_argument("--tolerance", type=float, default=0.2, help="largest fp16 change allowed (points)")
    parser.add_argument("--log", type=Path, default=None, help="the run's log (default: <run_dir>.log)")
    args = parser.parse_args(argv)
    summary = ship(
        args.run_dir,
        args.name,
        data=args.data,
        test_split=args.test_split,
        tolerance=args.tolerance,
        log=args.log,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
