"""Model cards: one per registry entry, equal to the registry's record."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import zoo
from zoo.cards import TASK, front_matter, render_card

CARDS = Path(__file__).resolve().parents[1] / "model_cards"


def parse(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_has_an_up_to_date_card(name: str) -> None:
    path = CARDS / f"{name}.md"
    assert path.is_file(), "missing card: run `zoo card --all --out model_cards`"
    assert path.read_text() == render_card(zoo.model_info(name)), "stale card: run `zoo card --all`"


@pytest.mark.parametrize("name", zoo.list_models())
def test_card_numbers_equal_the_registry(name: str) -> None:
    entry = zoo.model_info(name)
    meta, body = parse((CARDS / f"{name}.md").read_text())
    assert meta == front_matter(entry)
    assert meta["license"] == entry.license and meta["library_name"] == "zoo"
    values = [m["value"] for r in meta.get("model-index", [{}])[0].get("results", []) for m in r["metrics"]]
    # scratch-* rows measure the architecture from random weights: the card shows them as the
    # few-labels baseline, never as this encoder's results.
    # task-* rows (a pretext method's own accuracy or error) are no image-classification result.
    own = [m for m in entry.reported + entry.measured if not m.protocol.startswith(("scratch-", TASK))]
    assert values == [m.value for m in own]
    for m in entry.reported + entry.measured:
        shown = f"{m.value:.4g}" if m.protocol.startswith(TASK) else f"{m.value:.2f}"
        assert f"| {shown} | {m.how} |" in body, "the table states each number and how it was measured"
    for section in ("## Method", "## How to use", "## Evaluation", "## Limitations"):
        assert section in body
    assert "torch.hub.load" in body and "onnxruntime" in body


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if zoo.model_info(n).training])
def test_cards_of_trained_encoders_show_how_to_retrain_them(name: str) -> None:
    t = zoo.model_info(name).training
    _, body = parse((CARDS / f"{name}.md").read_text())
    # The command block gives the record's command (a run lengthened on resume: one line per stretch).
    assert "## Training" in body
    block = body.split("## Training", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert " && ".join(block.splitlines()) == t.command
    recipe = Path(__file__).resolve().parents[1] / t.recipe
    assert recipe.is_file() and t.command.split()[2] == recipe.stem, "the command runs the recipe named"
    assert t.curves and (CARDS / t.curves).is_file() and f"]({t.curves})" in body
    # The recipe's header comment (its settings, and what it changes from the paper) is quoted,
    # without its `Run:` line; the first comment line is the recipe's title.
    header = [line for line in recipe.read_text().splitlines() if line.startswith("#")]
    quoted = next(line for line in body.splitlines() if line.startswith("> "))
    assert quoted.startswith("> " + header[0].lstrip("# ").strip()) and "Run: zoo train" not in quoted
    # An encoder read at another size than it trained on says so, and how to ship a run so.
    views = int(dict(a.split("=", 1) for a in t.command.split() if "=" in a).get("augment.size", 0))
    views = views or yaml.safe_load(recipe.read_text())["augment"]["size"]
    read_at = zoo.model_info(name).preprocess.input_size
    assert (f"trains on {views} px views; the shipped encoder reads images at {read_at} px" in body) == (
        read_at != views
    )
    assert ("--test-size" in body) == (read_at != views)


def test_a_run_lengthened_on_resume_shows_one_command_per_stretch() -> None:
    from zoo.pretrained import TRAINED, trained_entry

    row = next(r for r in TRAINED if r.name == "moco-v2-r18h-cifar10.ep200")
    first = "zoo train moco_v2_r18h_cifar10 train.epochs=200"
    then = "zoo train moco_v2_r18h_cifar10 train.epochs=400 --resume"
    lengthened = row._replace(name="moco-v2-r18h-cifar10.ep400", command=f"{first} && {then}", epochs=400)
    _, body = parse(render_card(trained_entry(lengthened)))
    assert f"```bash\n{first}\n{then}\n```" in body
    assert "changed on resume" in body and "one after the other" in body
    # It ran its recipe's 200 epochs and then more: there is no longer schedule to point to. A
    # run cut short by the override (the 8-epoch leaderboard) has one.
    assert "Without the `train.epochs` override" not in body
    short = row._replace(command=first.replace("=200", "=8"), epochs=8)
    assert "Without the `train.epochs` override" in trained_entry(short).limitations


def test_no_orphan_cards() -> None:
    assert sorted(p.stem for p in CARDS.glob("*.md")) == zoo.list_models()


def test_few_labels_and_transfer_sections() -> None:
    import dataclasses

    from zoo.registry import Metric

    registered = zoo.model_info("dino-r18q-cifar10")
    # Only its frozen numbers on its own set: the few-labels and transfer ones below are made up.
    frozen = ("knn-k20", "knn-k200", "linear", "nmi")
    kept = tuple(m for m in registered.measured if m.dataset == "cifar10-test" and m.protocol in frozen)
    base = dataclasses.replace(registered, measured=kept)
    cmd = "zoo eval dino-r18q-cifar10 --data ../shared/data/cifar10 --protocol finetune --label-fraction"
    nette = "zoo eval dino-r18q-cifar10 --data ../shared/data/imagenette"
    extra = (
        Metric(
            "cifar10-test",
            "finetune-1pct",
            45.17,
            "fine-tune on 500 labelled images",
            f"{cmd} 0.01 --epochs 30",
        ),
        Metric(
            "cifar10-test",
            "finetune-10pct",
            61.5,
            "fine-tune on 5000 labelled images",
            f"{cmd} 0.1 --epochs 10",
        ),
        Metric(
            "cifar10-test",
            "scratch-finetune-1pct",
            30.25,
            "fine-tune on 500 labelled images, from random initialisation",
            f"{cmd} 0.01 --from-scratch --epochs 30",
        ),
        Metric(
            "imagenette-val", "knn-k20", 28.75, "weighted kNN, k=20, T=0.07 on Imagenette", f"{nette} -k 20"
        ),
    )
    entry = dataclasses.replace(base, measured=base.measured + extra)
    meta, body = parse(render_card(entry))
    values = [m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]]
    assert values == [m.value for m in base.measured] + [45.17, 61.5, 28.75], "not the scratch number"
    evaluation, rest = body.split("## Few labels", 1)
    few, rest = rest.split("## Transfer", 1)
    transfer = rest.split("## Training", 1)[0]
    assert all(f"| {m.value:.2f} |" in evaluation for m in base.measured) and "45.17" not in evaluation
    assert "| CIFAR-10 (test split) | 1% | this encoder | 45.17 | fine-tune on 500 labelled images |" in few
    assert f"| `{cmd} 0.01 --epochs 30` |" in few
    scratch = (
        "| CIFAR-10 (test split) | 1% | random (from scratch) | 30.25 | fine-tune on 500 labelled images,"
    )
    assert scratch in few and f"`{cmd} 0.01 --from-scratch --epochs 30`" in few
    assert "| 10% | this encoder | 61.50 |" in few
    assert "| Imagenette (val split) | weighted kNN top-1 (k=20, T=0.07) | 28.75 |" in transfer
    assert f"`{nette} -k 20`" in transfer and "trained on CIFAR-10 only" in transfer
    # An entry without such numbers has neither section.
    plain = render_card(base)
    assert "## Few labels" not in plain and "## Transfer" not in plain


def test_pretext_task_section() -> None:
    import dataclasses

    from zoo.registry import Metric

    base = zoo.model_info("simclr-r18q-cifar10")
    how = "4-way rotation accuracy (%): mean of the 10 steps logged in the last epoch (8) of training"
    cmd = "zoo train rotnet_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1"
    task = Metric("cifar10-train", "task-rotation-acc", 87.125, how, cmd)
    mse = Metric("cifar10-train", "task-reconstruction-mse", 0.01234, "reconstruction MSE", cmd)
    meta, body = parse(render_card(dataclasses.replace(base, measured=(*base.measured, task, mse))))
    assert meta == front_matter(base), "a pretext number is no image-classification result"
    evaluation, rest = body.split("## Pretext task", 1)
    assert "87.12" not in evaluation and "## Training" in rest
    assert f"| rotation acc | 87.12 | {how} | `{cmd}` |" in rest
    assert "| reconstruction mse | 0.01234 |" in rest, "small errors keep their digits"
    assert "## Pretext task" not in render_card(base)
    # IIC's own task is clustering (its accuracy on the test split), not a pretext task.
    hungarian = Metric("cifar10-test", "task-cluster-accuracy", 19.36, "Hungarian", "python -m ...")
    iic = dataclasses.replace(base, method="iic", measured=(*base.measured, hungarian))
    assert "## Clustering task" in render_card(iic) and "## Pretext task" not in render_card(iic)


def test_flagship_cards_state_cpu_hours_and_plot_them_next_to_the_reference() -> None:
    import json

    entry = zoo.model_info("simclr-r18h-imagenette")
    assert entry.training is not None and entry.training.progress
    figure = CARDS / entry.training.progress
    progress = json.loads(figure.with_suffix(".json").read_text())
    last = progress["points"][-1]
    _, body = parse(render_card(entry))
    compute = body.split("### Compute", 1)[1]
    assert f"{last['cpu_hours']:.1f} CPU-hours to epoch {last['epoch']}" in compute
    assert progress["reference"]["label"] in compute
    assert f"]({entry.training.progress})" in compute and figure.is_file()
    assert "flagship" in entry.description
    # A short reference run has neither the section nor the flagship wording.
    short = zoo.model_info("simclr-r18q-cifar10")
    assert "### Compute" not in render_card(short) and "flagship" not in short.description


def test_trained_cards_set_the_evaluation_beside_random_init_of_the_same_network() -> None:
    """A card shows each number beside the leaderboard's random-init row of the same network
    (architecture, input size), with the difference, and the command that reproduces the floor
    under the card's own name; an encoder read at another size has no such row to compare with."""
    from zoo.leaderboard import BASELINES

    for baseline in BASELINES:
        like = zoo.model_info(baseline.like)
        same = [
            n
            for n in zoo.list_models()
            if (e := zoo.model_info(n)).training and (e.arch, e.preprocess) == (like.arch, like.preprocess)
        ]
        assert baseline.like in same
        for name in same:
            body = (CARDS / f"{name}.md").read_text()
            assert "what the pretraining bought" in body
            own = {(m.dataset, m.protocol): m.value for m in zoo.model_info(name).measured}
            for floor in baseline.metrics():
                if (floor.dataset, floor.protocol) not in own:
                    continue
                value = own[floor.dataset, floor.protocol]
                row = f"| {value:.2f} | {floor.value:.2f} | {value - floor.value:+.2f} |"
                assert row in body, (name, floor.protocol)
                assert f"zoo eval {name} --random-init " in body
    # The flagship reads 48 px images: its floor is the network's at 48 px, not the 32 px one.
    flagship = (CARDS / "moco-v2-r18q-cifar10.ep200.md").read_text()
    assert "| 73.27 | 33.68 | +39.59 |" in flagship and "| 32.36 |" not in flagship
