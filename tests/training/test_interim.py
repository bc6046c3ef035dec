"""`python -m zoo.training.interim`: a run's checkpoint read on the full splits, online and
momentum backbones, at test readings (resolution, mirror average), on a tiny real MoCo v2 run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _train_recipes import tiny_recipe
from zoo.training.checkpoint import CHECKPOINT_NAME
from zoo.training.interim import main, read_run
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict

import zoo
from zoo.errors import ZooError
from zoo.evaluate import evaluate
from zoo.registry import Preprocess


def test_a_checkpoint_is_read_as_its_encoder_would_ship(tmp_path: Path, tiny_dataset: Path) -> None:
    recipe = tiny_recipe(tmp_path / "run", tiny_dataset, "moco_v2", train__max_steps=2)
    Trainer(recipe_from_dict(recipe)).fit()  # stopped mid-run: read all the same
    result = read_run(tmp_path / "run", ["16/16", "24/24+flip"], backbones=("online", "momentum"), k=5)
    assert result["step"] == 2
    got = {(r["backbone"], r["candidate"]): r for r in result["readings"]}
    assert list(got) == [(b, c) for b in ("online", "momentum") for c in ("16/16", "24/24+flip")]
    # The same numbers from the checkpoint's tensors, loaded by hand into the registered arch.
    model = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)["model"]
    for which, prefix in (("online", "backbone."), ("momentum", "key_backbone.")):
        encoder = zoo.create_model("resnet18_cifar_quarter")
        weights = {k.removeprefix(prefix): v.float() for k, v in model.items() if k.startswith(prefix)}
        encoder.backbone.load_state_dict(weights)
        for text, size, flip in (("16/16", 16, False), ("24/24+flip", 24, True)):
            encoder.preprocess = Preprocess(input_size=size, resize_size=size, flip_average=flip)
            expected = evaluate(encoder, tiny_dataset, k=5, temperature=0.1, backend="torch")["top1"]
            assert got[(which, text)]["test"] == expected, (which, text)
            assert 0 <= got[(which, text)]["held_out_train"] <= 100


def test_the_command_writes_json_and_refuses_what_it_cannot_read(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_recipe(tmp_path / "run", tiny_dataset, "simclr", train__max_steps=1)
    Trainer(recipe_from_dict(recipe)).fit()
    main([str(tmp_path / "run"), "-k", "5", "--out", str(tmp_path / "r.json")])
    written = json.loads((tmp_path / "r.json").read_text())
    assert [(r["backbone"], r["candidate"]) for r in written["readings"]] == [("online", "16/16")]
    assert json.loads(capsys.readouterr().out) == written
    with pytest.raises(ZooError, match="simclr keeps no momentum backbone"):
        read_run(tmp_path / "run", ["16/16"], backbones=("momentum",))
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "no recipe.yaml" in capsys.readouterr().err
