"""Shared by the tests of issue 10's methods: tiny recipes over real CIFAR-10 images, a tiny
backbone, an in-process stop/resume check and the slow "beats random init" check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from _train_recipes import tiny_recipe
from torch import nn
from zoo.training.batch_norm import recalibrated
from zoo.training.checkpoint import Progress
from zoo.training.data import evaluation_batches
from zoo.training.loop import Trainer, read_csv
from zoo.training.methods import get_method
from zoo.training.recipe import Recipe, load_recipe, recipe_from_dict


def seed_recipe(out_dir: Path, cifar_root: Path, method: dict, **overrides) -> dict:
    """``tiny_recipe`` (8 images per class, 16 px views) with another method section."""
    recipe = tiny_recipe(out_dir, cifar_root, "simclr", **overrides)
    recipe["method"] = method
    recipe["name"] = f"{method['name'].replace('_', '')}-r18q-cifar10"
    return recipe


def tiny_backbone() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def build(name: str, **config) -> nn.Module:
    cls = get_method(name)
    torch.manual_seed(0)
    return cls(tiny_backbone(), 8, cls.Config(**config))


def losses(run_dir: Path) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["loss"]) for r in read_csv(run_dir / "metrics.csv")]


def stop_and_resume_equals_uninterrupted(tmp_path: Path, cifar_root: Path, method: dict, stop: int) -> None:
    """Train 2 epochs straight; train to step ``stop``, then resume in a new Trainer: every
    step's loss is the same (method state in the checkpoint: banks, labels, RNG)."""
    full = recipe_from_dict(seed_recipe(tmp_path / "full", cifar_root, method))
    Trainer(full).fit()
    part = recipe_from_dict(seed_recipe(tmp_path / "part", cifar_root, method, train__max_steps=stop))
    first = Trainer(part).fit()
    assert first.steps == stop and not first.finished
    rest = recipe_from_dict(seed_recipe(tmp_path / "part", cifar_root, method))
    resumed = Trainer(rest, resume=True)
    said: list[str] = []
    resumed.log = said.append  # type: ignore[method-assign]
    assert resumed.fit().finished
    # It continued from step ``stop`` (a silent restart from step 0 would reproduce the losses too).
    assert any(f"at step {stop} (epoch" in line for line in said), said
    reference = losses(tmp_path / "full")
    assert len(reference) == 10  # 80 images / batch 16 x 2 epochs
    assert losses(tmp_path / "part") == reference


#: The override for methods that need more steps than 10,000 images give before they start
#: (clustering, memory banks, local-global InfoMax, the DCGAN game): all 50,000 train images.
WHOLE_SPLIT = "data.limit_per_class=0"


def short_recipe(tmp_path: Path, recipe_name: str, cifar_root: Path, *overrides: str):
    """The published CIFAR-10 recipe, shortened as every method's short run is: 2 epochs on
    10,000 images (:data:`WHOLE_SPLIT` lifts the limit), the kNN monitor (k=200) on 2,000 test
    images at the end only."""
    return load_recipe(
        recipe_name,
        [
            f"data.path={cifar_root}",
            "data.limit_per_class=1000",
            "train.epochs=2",
            "train.compile=false",
            f"run.out_dir={tmp_path / 'run'}",
            "run.knn_every_epochs=0",
            "run.knn_test_images=2000",
            "run.export=false",
            *overrides,
        ],
    )


def random_init_knn(recipe: Recipe) -> tuple[float, float]:
    """kNN of the seeded initialisation as is (BatchNorm running statistics at their start,
    mean 0 and variance 1), then with those statistics re-estimated on the training images
    the monitor embeds (train mode, no weight update): what a run that learnt nothing would
    measure. Either can be the higher (IIC's recipe: 30.35 as is, 23.80 refreshed), so a
    run must beat both. A recipe with ``run.bn_recalibration_images`` has its monitor refresh
    them itself, so its "as is" floor is measured without that (else both would be refreshed)."""
    raw = replace(recipe, run=replace(recipe.run, bn_recalibration_images=0))
    trainer = Trainer(raw)
    trainer._setup()
    as_is = trainer._monitor(Progress())["top1"]
    backbone = trainer.method.backbone
    batches = evaluation_batches(trainer.images, trainer.eval_size, trainer.mean, trainer.std)
    backbone.load_state_dict(recalibrated(backbone, batches).state_dict())
    return as_is, trainer._monitor(Progress())["top1"]


def short_run_beats_random_init(tmp_path: Path, recipe_name: str, cifar_root: Path, *overrides: str) -> dict:
    """:func:`short_recipe`: the kNN monitor after training beats the same seeded
    initialisation's, with BatchNorm's running statistics as they start and refreshed."""
    recipe = short_recipe(tmp_path, recipe_name, cifar_root, *overrides)
    as_is, refreshed = random_init_knn(recipe)
    before = max(as_is, refreshed)
    trainer = Trainer(recipe)
    after = trainer.fit().knn[-1]["top1"]
    print(
        f"{recipe_name}: kNN top-1 random init {as_is:.2f}% (BatchNorm statistics refreshed:"
        f" {refreshed:.2f}%), after {recipe.train.epochs} epochs {after:.2f}%"
    )
    assert after > before, (as_is, refreshed, after)
    return {
        "random_init": before,
        "random_init_as_is": as_is,
        "random_init_refreshed": refreshed,
        "trained": after,
        "trainer": trainer,
    }


def compiles_while_training(
    method: nn.Module, step_inputs, points: list[tuple[int, int]], step_batch=dict
) -> list[int]:
    """How many graphs ``torch.compile`` built up to each of ``points`` (``(step, epoch)``,
    scheduled in turn, one forward each, of ``step_inputs()`` and the keywords
    ``step_batch()``, e.g. sample indices), through AOT autograd without code generation
    (``aot_eager``: it specialises Python floats as inductor does, where dynamo's plain eager
    backend would let them turn dynamic). A schedule whose values reach the compiled forward
    as Python numbers compiles again at every new value."""
    import torch._dynamo
    from torch._dynamo.backends.registry import lookup_backend

    built: list[int] = []
    aot_eager = lookup_backend("aot_eager")

    def counting(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        built.append(1)
        return aot_eager(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(method, backend=counting)
    counts = []
    for step, epoch in points:
        method.schedule(step, 100, epoch)
        compiled(*step_inputs(), **step_batch())
        counts.append(len(built))
    torch._dynamo.reset()
    return counts
