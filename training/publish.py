"""The end of a run: an exported zoo folder with the measured evaluation and the recipe.

``<out_dir>/export/`` holds what ``zoo export`` writes (config.json, model.safetensors,
README.md card, parity-checked model.onnx), with the card extended by the recipe, the
command that reproduces it, the training curves (``curves.png`` when matplotlib is
installed; ``metrics.csv`` always) and the evaluation measured on the test split.
"""

from __future__ import annotations

import copy
import os
import platform
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from zoo.errors import ZooError
from zoo.folder import CARD_NAME, atomic_write_text
from zoo.registry import Metric, ModelEntry, Preprocess, Weights

if TYPE_CHECKING:
    from zoo.training.checkpoint import Progress
    from zoo.training.loop import Trainer
    from zoo.training.recipe import Recipe


#: Trainer method names whose registry name is not the trainer's with '-' for '_' (the
#: upstream Barlow Twins entries spell it as one word).
_REGISTRY_SPELLING = {"barlow_twins": "barlowtwins"}


def registry_method(name: str) -> str:
    """The registry's name of a trainer method (``moco_v2`` -> ``moco-v2``): what exported
    folders, shipped entries, their cards and :data:`zoo.pretrained.PAPERS` use."""
    return _REGISTRY_SPELLING.get(name, name.replace("_", "-"))


def paper_of(recipe: Recipe) -> str:
    """The paper a run's method follows (:data:`zoo.pretrained.PAPERS`), except SimCLR with any
    of v2's options (``proj_layers`` 3 or more, a memory of keys) follows SimCLR v2."""
    from zoo.pretrained import PAPERS

    name, m = recipe.method_name, recipe.method
    if name == "simclr" and (getattr(m, "proj_layers", 2) >= 3 or getattr(m, "queue_size", 0) > 0):
        name = "simclr_v2"
    return PAPERS.get(registry_method(name), "")


def final_evaluation(trainer: Trainer, backbone: torch.nn.Module | None = None) -> list[Metric]:
    """On the full train and test splits, fp32 features of ``backbone`` (default: the one
    the export ships, :meth:`Trainer.evaluation_backbone`): weighted kNN (solo-learn's k=20,
    T=0.07 and lightly's k=200, T=0.1), the linear probe and k-means NMI of
    :mod:`zoo.evaluate`, each with the ``zoo eval`` command that reproduces it."""
    from zoo.evaluate import cluster_scores, knn_predict, linear_probe

    r = trainer.recipe
    backbone = trainer.evaluation_backbone() if backbone is None else backbone
    test_images, test_labels = trainer.test_split()
    train = trainer.embed(trainer.images, autocast=False, encoder=backbone)
    test = trainer.embed(test_images, autocast=False, encoder=backbone)
    y_train, y_test = trainer.labels.numpy(), test_labels.numpy()
    dataset = Path(r.data.path).name
    num_classes = len(trainer.classes)
    export_dir = trainer.out_dir / "export"
    test_split = r.data.test_split or ("val" if (Path(r.data.path) / "val").is_dir() else "test")

    # The same images: a recipe that trained on a per-class subset also scored on one.
    subset = f" --limit-per-class {r.data.limit_per_class}" if r.data.limit_per_class else ""

    def reproduce(flags: str) -> str:
        # The same number from the exported folder (fp32 features, same images).
        return f"zoo eval {export_dir} --data {r.data.path} --test-split {test_split}{subset} {flags}"

    metrics = []
    for k, t in ((20, 0.07), (200, 0.1)):
        pred = knn_predict(train, y_train, test, k=k, temperature=t, num_classes=num_classes)
        top1 = 100.0 * float((pred == y_test).mean())
        how = (
            f"weighted kNN, k={k}, T={t}, cosine, {len(train)} train -> {len(test)} test images,"
            f" {r.augment.size} px centre crop"
        )
        metrics.append(Metric(dataset, "knn", round(top1, 2), how, reproduce(f"-k {k} --temperature {t}")))
    res = linear_probe(train, y_train, test, y_test, num_classes=num_classes)
    metrics.append(
        Metric(dataset, "linear", round(res["top1"], 2), res["how"], reproduce("--protocol linear"))
    )
    res = cluster_scores(test, y_test, num_classes=num_classes)
    how = f"{res['how']} (ARI {res['ari']:.2f}, Hungarian accuracy {res['accuracy']:.2f}%)"
    metrics.append(Metric(dataset, "nmi", round(res["nmi"], 2), how, reproduce("--protocol cluster")))
    return metrics


def export_run(trainer: Trainer, progress: Progress) -> Path:
    import zoo
    from zoo.export import export

    r = trainer.recipe
    # Written beside the folder and swapped in when complete: a run killed while writing it
    # (the ONNX graph and its parity check, the curves, the card) keeps its previous export
    # whole, never some files of each.
    final = trainer.out_dir / "export"
    out = trainer.out_dir / ".export.staging"
    remove_path(out)
    arch = exported_arch(trainer)
    evaluated = trainer.evaluation_backbone()
    metrics = final_evaluation(trainer, evaluated)
    pre = Preprocess(
        input_size=r.augment.size,
        resize_size=max(r.augment.size, r.data.image_size),
        interpolation="bilinear",
        mean=trainer.mean,
        std=trainer.std,
    )
    entry = ModelEntry(
        name=r.name,
        arch=arch,
        method=registry_method(r.method_name),
        weights=Weights(sha256=""),
        license="Apache-2.0",
        paper=paper_of(r),
        description=(
            f"{r.method_name} encoder trained by zoo from scratch on {Path(r.data.path).name}"
            f" ({len(trainer.images)} images, {r.train.epochs} epochs, batch {r.train.batch_size});"
            " the recipe and the command that reproduces it are below."
        ),
        dataset=Path(r.data.path).name,
        preprocess=pre,
        measured=tuple(metrics),
        limitations=(
            "Trained at small scale on one dataset: features suit images like its training data"
            f" ({r.augment.size} px); expect much lower quality on other domains."
        ),
    )
    backbone = copy.deepcopy(evaluated).float().cpu().eval()
    backbone.to(memory_format=torch.contiguous_format)
    encoder = zoo.Encoder(backbone, arch, pre, entry)
    export(encoder, out, onnx=r.run.export_onnx)
    plot = plot_curves(trainer.out_dir, out, title=r.name)
    for name in ("metrics.csv", "knn.csv"):
        if (trainer.out_dir / name).is_file():
            shutil.copy2(trainer.out_dir / name, out / name)
    card = (out / CARD_NAME).read_text(encoding="utf-8")
    atomic_write_text(out / CARD_NAME, card.rstrip("\n") + "\n\n" + training_section(trainer, progress, plot))
    atomic_write_text(out / "recipe.yaml", r.to_yaml())
    replace_folder(out, final)
    trainer.log(f"exported {final}: " + ", ".join(f"{m.protocol} {m.value:.2f}" for m in metrics))
    return final


def replace_folder(new: Path, folder: Path) -> None:
    """Put the complete folder ``new`` in the place of ``folder`` (absent, a folder, or a file or
    link, which is replaced, not followed). Two renames, as a folder cannot replace a non-empty
    one in one: the old one is moved aside first and deleted last, so that ``folder`` is, at
    every moment, one whole version or absent."""
    old = folder.with_name(f".{folder.name}.old")
    remove_path(old)
    if os.path.lexists(folder):
        folder.rename(old)
    new.rename(folder)
    try:
        remove_path(old)
    except OSError:
        pass  # the new folder is in place; the next export deletes what is left of the old one


def remove_path(path: Path) -> None:
    """Delete ``path`` whatever it is (a link itself, not what it points to); absent is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def exported_arch(trainer: Trainer) -> str:
    """The registered architecture that holds the run's backbone: the recipe's, except a CMC
    run on a plain base arch (recipes before the Lab-split archs were registered), whose
    two-encoder backbone exports as the base's Lab-split arch (the same state-dict keys)."""
    from zoo.models.lab_split import LabSplitEncoder, lab_split_arch

    r, backbone = trainer.recipe, trainer.method.backbone
    if not isinstance(backbone, LabSplitEncoder):
        return r.arch
    try:
        arch = lab_split_arch(r.arch)
    except ValueError as e:
        raise ZooError(f"{r.name}: cannot export the {r.method_name} encoder: {e}") from None
    # The module un-normalises its input itself: it must expect the normalisation the
    # exported preprocessing applies, or the folder would compute other features.
    if (backbone.mean, backbone.std) != (tuple(trainer.mean), tuple(trainer.std)):
        raise ZooError(
            f"{r.name}: the Lab-split encoder expects RGB normalised with mean {backbone.mean}, std"
            f" {backbone.std}, but the run's views use mean {tuple(trainer.mean)}, std {tuple(trainer.std)}"
        )
    return arch


def plot_curves(run_dir: Path, out: Path, *, title: str = "", file_name: str = "curves.png") -> str:
    """``out/file_name`` (loss and the online kNN monitor over steps) if matplotlib is
    installed; returns the Markdown to show it, or a note saying why there is none."""
    from zoo.training.loop import read_csv

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "No curves plot: matplotlib is not installed (`pip install matplotlib`); see metrics.csv."
    rows = read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    knn = read_csv(run_dir / "knn.csv") if (run_dir / "knn.csv").is_file() else []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot([int(x["step"]) for x in rows], [float(x["loss"]) for x in rows])
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[1].plot([int(x["step"]) for x in knn], [float(x["top1"]) for x in knn], marker="o")
    monitor = "online kNN monitor"
    if knn:
        first = knn[0]
        monitor += (
            f" (k={first['k']}, T={first['temperature']}, {int(first['train_images']):,} train"
            f" -> {int(first['test_images']):,}"
            f" {'held-out train' if first.get('split') == 'holdout' else 'test'} images)"
        )
    axes[1].set(xlabel="step", ylabel="kNN top-1 (%)", title=monitor)
    axes[1].title.set_fontsize(9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / file_name, dpi=100)
    plt.close(fig)
    return f"![training curves]({file_name})"


def reproduce_commands(command: str, lengths: list[list[int]], steps_per_epoch: int) -> list[str]:
    """The ``zoo train`` commands that retrace a run: ``command`` (the last one that ran it), or,
    for a run whose ``train.epochs`` changed on resume (``lengths``, :class:`Progress`), one
    command per stretch: each runs to where the next length took over, then ``--resume``s with
    that length (the schedules are functions of the length)."""
    if len(lengths) < 2:
        return [command]

    def key(word: str) -> str:
        return word.split("=", 1)[0].strip()  # as the recipe loader reads an override

    words = [w for w in shlex.split(command) if key(w) != "train.epochs"]
    commands = []
    for i, (_, epochs) in enumerate(lengths):
        part = [*words, f"train.epochs={epochs}"]
        if i + 1 < len(lengths) and lengths[i + 1][0] != epochs * steps_per_epoch:
            # Changed before this length's end: stop where it was changed.
            part = [w for w in part if key(w) != "train.max_steps"] + [f"train.max_steps={lengths[i + 1][0]}"]
        if i:
            part.append("--resume")
        commands.append(" ".join(shlex.quote(w) for w in part))
    return commands


def training_section(trainer: Trainer, progress: Progress, plot: str) -> str:
    r = trainer.recipe
    command = trainer.command or "zoo train training/recipes/<recipe>.yaml"
    commands = reproduce_commands(command, progress.lengths, trainer.steps_per_epoch)
    if not trainer.command:
        commands[-1] += f"  # name: {r.name}"
    how = "Reproduce with:"
    if len(commands) > 1:
        stretches = ", then ".join(
            f"a {epochs}-epoch one from step {start:,}" if start else f"a {epochs}-epoch run"
            for start, epochs in progress.lengths
        )
        how = (
            f"The run's `train.epochs` changed on resume: its schedules (learning rate, and momentum"
            f" where the method has one) followed {stretches}. Reproduce with (one command after the other):"
        )
    lines = [
        "## Training",
        "",
        f"Trained by zoo's trainer ({progress.step} steps, {trainer.world} process(es), {trainer.precision},"
        f" {platform.machine()} {platform.system()}, torch {torch.__version__}). {how}",
        "",
        "```bash",
        *commands,
        "```",
        "",
        plot,
        "",
        "Per-step metrics are in `metrics.csv`, the online kNN monitor in `knn.csv`.",
        "",
        "<details><summary>Recipe</summary>",
        "",
        "```yaml",
        r.to_yaml().rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)
