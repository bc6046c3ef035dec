"""Ship a finished run with the project: weights installed with zoo, curves beside the cards.

    python -m zoo.training.ship runs/publish/simclr_r18q_cifar10 --name simclr-r18q-cifar10

reads the run's exported folder (``<run>/export``, fp32), rounds the weights to fp16 and
measures both with the protocols of ``zoo eval`` (weighted kNN k=20/T=0.07 and k=200/T=0.1,
linear probe, k-means NMI) on the run's dataset. The fp16 copy ships when no number moves by
more than ``--tolerance`` points, else the fp32 weights do. It writes

* ``zoo/weights/<name>.safetensors``: the shipped weights (atomically);
* ``model_cards/curves/<name>.png`` (+ ``.metrics.csv``, ``.knn.csv``): the training curves;
* ``zoo/data/measured.csv``: the four numbers of the shipped file, one row each with how they
  were measured, the ``zoo eval`` command that reproduces it and the file's sha256 prefix
  (:func:`zoo.results.renew`); rows of the same name measured on other weights are dropped
  and their commands printed, to be measured again. Methods with a task of their own (the
  pretext tasks: rotation accuracy, reconstruction error, ...; ``Method.task_metrics``) add
  one ``task-*`` row per number: its mean over the last epoch of training (:func:`task_rows`),
  or, for a task measured on the finished run (IIC's clustering accuracy on the test split,
  ``Method.evaluate_task``), that measurement;
* ``<run>/ship.json``: the sha256, precision, both evaluations, the reproduce command and
  the budget.

It prints the :class:`zoo.pretrained.Trained` row to paste into ``TRAINED`` in
``zoo/pretrained.py`` (replacing the name's old row); until it is there, ``import zoo`` refuses
the new rows of the results table (measured on weights no entry ships).

The numbers recorded are those of the shipped file, measured exactly as
``zoo eval <name> --data DIR ...`` measures them once the entry is registered.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import torch
from zoo.training.checkpoint import CHECKPOINT_NAME, read_checkpoint_bytes
from zoo.training.publish import registry_method
from zoo.training.run_log import default_log, run_minutes, trained_on

import zoo
from zoo import memory, results
from zoo.encoder import Encoder
from zoo.errors import ZooError
from zoo.folder import atomic_write_text, save_safetensors
from zoo.pretrained import _CPU, PAPERS, Trained, recipe_of

#: (metric key, protocol, k, temperature, ``zoo eval`` flags)
PROTOCOLS = (
    ("knn-k20", "knn", 20, 0.07, "-k 20 --temperature 0.07"),
    ("knn-k200", "knn", 200, 0.1, "-k 200 --temperature 0.1"),
    ("linear", "linear", 20, 0.07, "--protocol linear"),
    ("nmi", "cluster", 20, 0.07, "--protocol cluster"),
)


def measured_rows(
    name: str,
    values: dict[str, float],
    *,
    precision: str,
    data: str,
    test_split: str,
    counts: tuple[int, int, int],
    weights: str,
    flip_average: bool = False,
) -> list[results.Result]:
    """The rows of the results table for the numbers ``values`` (:data:`PROTOCOLS` keys) of the
    shipped file: ``counts`` is (train images, test images, classes), ``weights`` its sha256;
    ``flip_average``: its features are averaged with the mirror image's (the how says so)."""
    from zoo.evaluate import dataset_key, default_test_split, runner_name

    n_train, n_test, n_classes = counts
    # measure() embeds with backend "auto": name what that was here ("ONNX Runtime" or "PyTorch").
    engine = runner_name("auto").split(",")[0]
    frozen = f"frozen features of the shipped {precision} weights (fp32 compute, {engine})"
    features = f"{frozen} averaged over the image and its mirror image" if flip_average else frozen
    probe = f"linear probe on {features}, standardised; AdamW lr 0.01 wd 1e-4, 100 epochs, batch 512, cosine"
    # k-means names its images after the features: the mirror phrase goes last, where it reads.
    mirror = ", each averaged with its mirror image" if flip_average else ""
    cluster = f"k-means (k={n_classes}, k-means++, best of 3, seed 0) on L2-normalised {frozen} of the"
    how = {
        "knn-k20": f"weighted kNN, k=20, T=0.07, cosine, on {features}",
        "knn-k200": f"weighted kNN, k=200, T=0.1, cosine, on {features}",
        "linear": probe,
        "nmi": f"{cluster} {test_split} images{mirror}; NMI x100",
    }
    pairs = f"{n_train:,} train -> {n_test:,} {test_split} images"
    # The split flag only where `zoo eval` would not pick that split by itself.
    split = "" if test_split == default_test_split(data) else f" --test-split {test_split}"
    return [
        results.Result(
            model=name,
            dataset=dataset_key(data, test_split),
            protocol=key,
            value=float(values[key]),
            how=f"{how[key]}; {n_test:,} images" if key == "nmi" else f"{how[key]}; {pairs}",
            command=f"zoo eval {name} --data {data}{split} {flags}",
            weights=weights[:16],
        )
        for key, _, _, _, flags in PROTOCOLS
    ]


def task_rows(
    metrics_csv: Path, task_metrics: dict[str, str], *, name: str, dataset: str, command: str, weights: str
) -> list[results.Result]:
    """One ``task-<column>`` row per entry of a method's ``task_metrics`` (column of the run's
    metrics.csv -> what it measures): the mean of the steps logged in the last epoch, on the
    training batches (``dataset``, e.g. ``cifar10-train``), reproduced by the training command."""
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        logged = list(csv.DictReader(f))
    if not logged:
        raise ValueError(f"{metrics_csv}: no logged steps")
    last_epoch = max(int(r["epoch"]) for r in logged)
    last = [r for r in logged if int(r["epoch"]) == last_epoch]
    rows = []
    for column, what in task_metrics.items():
        values = [float(r[column]) for r in last if r.get(column) not in (None, "")]
        if not values:
            raise ValueError(f"{metrics_csv}: task metric {column!r} not logged in epoch {last_epoch}")
        rows.append(
            results.Result(
                model=name,
                dataset=dataset,
                protocol="task-" + column.replace("_", "-"),
                value=round(sum(values) / len(values), 4),
                how=f"{what}: mean of the {len(values)} steps logged in the last epoch ({last_epoch + 1}) of"
                " training, on its training batches (the run's metrics.csv)",
                command=command,
                weights=weights[:16],
            )
        )
    return rows


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


#: Where the registry loads ``zoo:weights/<name>.safetensors`` from, and the checkout's cards:
#: absolute, so that shipping from another working directory writes where the registry reads.
WEIGHTS_DIR = Path(zoo.__file__).resolve().parent / "weights"
CARDS_DIR = Path(zoo.__file__).resolve().parents[1] / "model_cards"


def reproduce_command(export_dir: Path) -> str:
    """The ``zoo train`` line of the exported card, without the run's output folder; the lines
    of a run whose length changed on resume joined by ``&&`` (one after the other)."""
    card = (export_dir / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Reproduce with[^`\n]*:\s*```bash\n(.+?)\n```", card, re.S)
    if not m:
        raise ValueError(f"{export_dir}/README.md: no 'Reproduce with' command")
    lines = [shlex.split(line, comments=True) for line in m.group(1).splitlines()]
    return " && ".join(
        shlex.join(w for w in words if not w.startswith("run.out_dir=")) for words in lines if words
    )


def exported_step(export_dir: Path) -> int:
    """The step whose model ``export_dir`` holds, as its card says."""
    card = (export_dir / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Trained by zoo's trainer \((\d+) steps", card)
    if not m:
        raise ValueError(f"{export_dir}/README.md: no 'Trained by zoo's trainer (N steps' line")
    return int(m.group(1))


def progress_figure(name: str, cards_dir: Path = CARDS_DIR) -> str:
    """A flagship's progress figure (``curves/flagship-<name without its tag>.png``, drawn by
    ``python -m zoo.training.progress``) where one is beside the cards, else "" (no flagship)."""
    figure = f"curves/flagship-{name.split('.')[0]}.png"
    return figure if (cards_dir / figure).is_file() else ""


def ship(
    run_dir: Path,
    name: str,
    *,
    data: str | None = None,
    test_split: str | None = None,
    tolerance: float = 0.2,
    weights_dir: Path = WEIGHTS_DIR,
    cards_dir: Path = CARDS_DIR,
    log: Path | None = None,
    results_file: Path = results.RESULTS_FILE,
    test_size: tuple[int, int] | tuple[int, int, bool] | None = None,
    patch_grid: tuple[int, int] | None = None,
) -> dict:
    """Ship ``run_dir`` as ``name`` (see the module's docstring). Returns what ``ship.json`` holds,
    plus ``row`` (the :class:`Trained` row for ``zoo/pretrained.py``), ``recorded`` (the rows
    written to ``results_file``) and ``stale`` (rows of ``name`` dropped from it: other weights).

    ``test_size`` (resize, crop[, flip]) ships the encoder reading images at that size instead of
    the run's, with ``flip`` its features averaged with the mirror image's (``flip_average``; choose
    both on held-out training images: :mod:`zoo.training.test_resolution`).
    ``patch_grid`` (grid, patch) ships it read on that grid of patches, features averaged, as
    patch-trained networks read best (:mod:`zoo.models.patch_grid`; compare the two read-outs
    first on held-out training images with :mod:`zoo.training.pretext.grid_knn` ``--holdout``)."""
    from zoo.training.methods import get_method
    from zoo.training.publish import plot_curves
    from zoo.training.recipe import load_recipe

    from zoo.evaluate import dataset_key, default_test_split, image_folder

    export_dir = run_dir / "export"
    recipe = load_recipe(export_dir / "recipe.yaml")
    ckpt, _ = read_checkpoint_bytes(run_dir / CHECKPOINT_NAME)
    progress = json.loads(torch.load(io.BytesIO(ckpt), weights_only=True)["state"])["progress"]
    exported = exported_step(export_dir)
    if exported != progress["step"]:
        # A run resumed after its export (lengthened), or killed while exporting again: the
        # folder's weights are not the checkpoint's, whose step the shipped row would record.
        raise ZooError(
            f"{export_dir} holds the model of step {exported} but the run's checkpoint is"
            f" at step {progress['step']}: resume the run to its end (zoo train ... --resume, with"
            " run.export=true if its export was off) so that it exports again, then ship"
        )
    # The log gives the row its minutes and machine: missing, it must stop the shipping before
    # the measurements (minutes of work), not after them.
    if log is None:
        log = default_log(run_dir)
        if not log.is_file():
            raise ZooError(
                f"{log}: no such log, and {run_dir / 'train.log'} neither: give the run's log"
                " (the output of its zoo train) with --log"
            )
    elif not log.is_file():
        raise ZooError(f"{log}: no such log: give the run's log (the output of its zoo train) with --log")
    data = data or recipe.data.path
    test_split = test_split or default_test_split(data)
    fp32 = zoo.load_folder(export_dir)
    trained_size = (fp32.preprocess.resize_size, fp32.preprocess.input_size)
    if test_size is not None:
        from zoo.training.test_resolution import at_test_size

        fp32 = at_test_size(fp32, *test_size)
    if patch_grid is not None:
        from zoo.models.patch_grid import read_on_patch_grid

        try:
            fp32 = read_on_patch_grid(fp32, *patch_grid)
        except ValueError as e:  # no such grid architecture, or images that do not tile
            raise ZooError(f"{run_dir}: {e}") from None
    fp16, half_state = rounded_to_fp16(fp32)
    measured = {"fp32": measure(fp32, data, test_split), "fp16": measure(fp16, data, test_split)}
    worst = max(abs(measured["fp16"][k]["value"] - measured["fp32"][k]["value"]) for k in measured["fp32"])
    precision = "fp16" if worst <= tolerance else "fp32"
    state = half_state if precision == "fp16" else fp32.backbone.state_dict()

    entry = dataclasses.replace(fp32.entry, name=name, method=registry_method(recipe.method_name))
    # Staged beside the shipped file and moved into its place only once every later step that
    # can fail has passed (curves, the run's command, log and task rows): a failure must not
    # leave new weights beside the old weights' numbers in the results table.
    shipped = weights_dir / f"{name}.safetensors"
    weights = save_safetensors(state, weights_dir / f".{name}.safetensors.staged", entry)
    try:
        sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()

        curves = cards_dir / "curves"
        curves.mkdir(parents=True, exist_ok=True)
        plot_curves(run_dir, curves, title=name, file_name=f"{name}.png")
        for src in ("metrics.csv", "knn.csv"):
            if (run_dir / src).is_file():
                shutil.copyfile(run_dir / src, curves / f"{name}.{src}")

        command = reproduce_command(export_dir)
        summary = {
            "name": name,
            "file": f"zoo:weights/{name}.safetensors",
            "sha256": sha256,
            "bytes": weights.stat().st_size,
            "precision": precision,
            "fp16_max_change": round(worst, 3),
            "test_size": {"resize": fp32.preprocess.resize_size, "crop": fp32.preprocess.input_size},
            "run_test_size": {"resize": trained_size[0], "crop": trained_size[1]},
            "flip_average": fp32.preprocess.flip_average,
            "patch_grid": None if patch_grid is None else {"grid": patch_grid[0], "patch": patch_grid[1]},
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
                "minutes": run_minutes(log),
                "threads": recipe.train.threads,
                "compile": recipe.train.compile,
                "machine": trained_on(log),
                "torch": torch.__version__,
            },
        }
        train_files = image_folder(Path(data) / "train")[0]
        test_files, _, classes = image_folder(Path(data) / test_split)
        recorded = measured_rows(
            name,
            {k: v["value"] for k, v in measured[precision].items()},
            precision=precision,
            data=data,
            test_split=test_split,
            counts=(len(train_files), len(test_files), len(classes)),
            weights=sha256,
            flip_average=fp32.preprocess.flip_average,
        )
        recorded += task_rows(
            run_dir / "metrics.csv",
            get_method(recipe.method_name).task_metrics,
            name=name,
            dataset=dataset_key(data, "train"),
            command=command,
            weights=sha256,
        )
        for t in get_method(recipe.method_name).evaluate_task(run_dir, recipe.name, data):
            recorded.append(
                results.Result(
                    model=name,
                    dataset=dataset_key(data, t.split),
                    protocol="task-" + t.protocol,
                    value=round(t.value, 4),
                    how=t.how,
                    command=f"{command} && {t.command}",
                    weights=sha256[:16],
                )
            )
        os.replace(weights, shipped)  # every step that can fail has passed: publish
    finally:
        weights.unlink(missing_ok=True)
    atomic_write_text(run_dir / "ship.json", json.dumps(summary, indent=2) + "\n")
    stale = results.renew(recorded, results_file)
    t = summary["training"]
    row = Trained(
        name=name,
        arch=entry.arch,
        method=entry.method,
        paper=PAPERS.get(entry.method, ""),
        dataset=entry.dataset,
        size=entry.preprocess.input_size,
        resize=entry.preprocess.resize_size,
        flip_average=entry.preprocess.flip_average,
        precision=precision,
        sha256=sha256,
        command=command,
        epochs=t["epochs"],
        steps=t["steps"],
        batch_size=t["batch_size"],
        minutes=t["minutes"],
        # What the log records; a log that names no machine leaves the shared-machine default.
        hardware=_CPU if t["machine"].startswith("not recorded") else t["machine"],
        progress=progress_figure(name, cards_dir),
        teacher=getattr(recipe.method, "teacher", "") or "",
    )
    return {**summary, "row": row, "recorded": recorded, "stale": stale}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.training.ship", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (with export/ and checkpoint.pt)")
    parser.add_argument("--name", required=True, help="registry name, <method>-<arch>-<dataset>")
    parser.add_argument("--data", default=None, help="dataset root (default: the recipe's data.path)")
    parser.add_argument("--test-split", default=None)
    parser.add_argument("--tolerance", type=float, default=0.2, help="largest fp16 change allowed (points)")
    parser.add_argument(
        "--test-size",
        default=None,
        metavar="RESIZE/CROP[+flip]",
        help="read images at this size instead of the run's, with +flip their features averaged with the"
        " mirror image's (chosen on held-out training images with python -m zoo.training.test_resolution)",
    )
    parser.add_argument(
        "--patch-grid",
        default=None,
        metavar="GRIDxPATCH",
        help="read images as a GRID x GRID grid of PATCH px patches, features averaged (e.g. 7x8: CPC v2's"
        " training grid; compare first with python -m zoo.training.pretext.grid_knn)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="the run's log (default: <run_dir>.log, else <run_dir>/train.log)",
    )
    parser.add_argument(
        "--weights-dir", type=Path, default=WEIGHTS_DIR, help="where the weights go (zoo/weights)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=results.RESULTS_FILE,
        help="the measured table to record into (default: the shipped one; another path stages the numbers"
        " until the TRAINED row is pasted, as `import zoo` refuses rows of unregistered weights)",
    )
    args = parser.parse_args(argv)
    memory.keep_freed_memory()  # batch after batch of features
    test_size = None
    if args.test_size:
        from zoo.training.test_resolution import parse_candidate

        try:
            test_size = parse_candidate(args.test_size)
        except ValueError as e:
            parser.error(str(e))
    patch_grid = None
    if args.patch_grid:
        m = re.fullmatch(r"(\d+)x(\d+)", args.patch_grid)
        if not m:
            parser.error(f"--patch-grid takes GRIDxPATCH, e.g. 7x8; got {args.patch_grid!r}")
        patch_grid = (int(m[1]), int(m[2]))
    try:
        summary = ship(
            args.run_dir,
            args.name,
            data=args.data,
            test_split=args.test_split,
            tolerance=args.tolerance,
            log=args.log,
            weights_dir=args.weights_dir,
            results_file=args.results,
            test_size=test_size,
            patch_grid=patch_grid,
        )
    except (ZooError, ValueError, OSError) as e:  # the run's files: its card, log, checkpoint
        parser.exit(2, f"zoo: error: {' '.join(str(e).split())}\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("row", "recorded", "stale")}, indent=2))
    print(f"\nRecorded {len(summary['recorded'])} numbers in {args.results}.")
    for r in summary["stale"]:
        print(f"Dropped {r.dataset} {r.protocol}, measured on weights {r.weights}; rerun: {r.command}")
    print(
        "Paste this row into TRAINED in zoo/pretrained.py, replacing any row of that name (check"
        " `paper`, and `hardware`, read from the run's log: add what a log cannot know, such as a"
        " second run sharing the machine); until then `import zoo` refuses the new numbers:\n"
    )
    print(summary["row"].source())


if __name__ == "__main__":
    main()
