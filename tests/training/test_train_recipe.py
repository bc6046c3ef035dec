"""Recipes: every published one loads; bad keys and types are errors naming the key."""

from __future__ import annotations

import pytest
from zoo.training.recipe import (
    RECIPES_DIR,
    RecipeError,
    apply_override,
    load_recipe,
    recipe_from_dict,
)


def _minimal() -> dict:
    return {"name": "simclr-r18-cifar10", "arch": "resnet18_cifar", "method": {"name": "simclr"}}


@pytest.mark.parametrize("path", sorted(RECIPES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_published_recipe_loads_and_is_named_after_its_file(path) -> None:
    import zoo

    recipe = load_recipe(path)
    # <method>_<arch>_<data>.yaml, and the zoo name <method>-<arch>-<data>.
    assert path.stem.startswith(recipe.method_name + "_")
    data = path.stem.rsplit("_", 1)[1]
    assert data in ("cifar10", "imagenette", "imagenet")
    assert recipe.name.endswith("-" + data)
    assert recipe.arch in zoo.list_archs()
    assert load_recipe(path.stem) == recipe  # by name too
    assert recipe_from_dict(recipe.to_dict()) == recipe  # round trip


def test_overrides_are_typed_and_nested() -> None:
    data = _minimal()
    for item in [
        "train.epochs=3",
        "method.temperature=0.2",
        "augment.global_scale=[0.3, 1.0]",
        "run.export=false",
    ]:
        apply_override(data, item)
    recipe = recipe_from_dict(data)
    assert recipe.train.epochs == 3 and recipe.method.temperature == 0.2
    assert recipe.augment.global_scale == (0.3, 1.0) and recipe.run.export is False


def test_exponent_floats_read_as_numbers() -> None:
    # PyYAML (YAML 1.1) reads 1e-5 as a string; a recipe must take it as Python does, in a
    # file and on the command line, and still refuse an integer key written that way.
    data = _minimal()
    for item in ["optim.weight_decay=1e-5", "optim.lr=3E-1", "method.temperature=+2.5e-1"]:
        apply_override(data, item)
    recipe = recipe_from_dict(data)
    assert (recipe.optim.weight_decay, recipe.optim.lr, recipe.method.temperature) == (1e-5, 0.3, 0.25)
    apply_override(data, "train.epochs=1e2")
    with pytest.raises(RecipeError, match=r"train.epochs: expected an integer, got '1e2'"):
        recipe_from_dict(data)


@pytest.mark.parametrize(
    "item,message",
    [
        ("train.epoch=3", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ("train.epochs=many", "train.epochs: expected an integer, got 'many'"),
        ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
        ("train.precision=fp8", "train.precision: expected one of"),
        ("run.export=1", "run.export: expected true or false"),
        ("method.temprature=0.1", "unknown key 'method.temprature' (did you mean 'method.temperature'?)"),
        ("augment.global_scale=0.5", "augment.global_scale: expected a list of 2 values"),
        ("method.name=simclrr", "method.name: unknown method 'simclrr'"),
        ("name=SimCLR_R18", "name: 'SimCLR_R18' must be lower case"),
        ("augment.size=0", "augment:"),
        ("augment.size=48", "augment.size: 48 is larger than data.image_size 32"),
        ("augment.global_scale=[0.9,0.2]", "global_scale must satisfy 0 < min <= max <= 1"),
        ("augment.local_scale=[0,0.1]", "local_scale must satisfy 0 < min <= max <= 1"),
        ("run.knn_train_images=-3", "knn_train_images and knn_test_images must be >= 0"),
        ("augment.grayscale_p=1.5", "grayscale_p is a probability, got 1.5"),
    ],
)
def test_bad_recipes_name_the_key(item: str, message: str) -> None:
    data = _minimal()
    apply_override(data, item)
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("preset", "method"), [("simclr", "simclr"), ("byol", "byol"), ("multicrop", "swav")]
)
def test_grey_views_are_a_recipe_key_defaulting_to_every_presets_20_percent(preset: str, method: str) -> None:
    from zoo.training.loop import view_configs

    data = _minimal()
    for item in (f"name={method}-r18-cifar10", f"method.name={method}", f"augment.preset={preset}"):
        apply_override(data, item)
    assert {v.grayscale_p for v in view_configs(recipe_from_dict(data))} == {0.2}
    apply_override(data, "augment.grayscale_p=0")
    assert {v.grayscale_p for v in view_configs(recipe_from_dict(data))} == {0.0}


def test_bad_override_syntax_and_unknown_recipe() -> None:
    with pytest.raises(RecipeError, match="key=value"):
        apply_override({}, "train.epochs")
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("simclr_r18_nowhere")


def test_zoo_train_list_prints_the_resolved_recipe_and_bad_keys_exit_2(capsys) -> None:
    from zoo.cli import main

    assert main(["train", "simclr_r18q_cifar10", "train.epochs=3", "--list"]) == 0
    out = capsys.readouterr().out
    assert "name: simclr-r18q-cifar10" in out and "epochs: 3" in out
    assert main(["train", "simclr_r18q_cifar10", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error:") and "unknown key 'train.epoch'" in err


@pytest.mark.parametrize("entry", ["zoo", "python -m zoo.training"])
def test_overrides_may_follow_the_options(entry: str, capsys) -> None:
    """`zoo train RECIPE --resume key=value` is how one continues a run with a change."""
    from zoo.training.cli import main as training_main

    from zoo.cli import main as zoo_main

    def run(*argv: str) -> int:
        return zoo_main(["train", *argv]) if entry == "zoo" else training_main(list(argv))

    assert run("simclr_r18q_cifar10", "--list", "train.epochs=3", "train.threads=2") == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "threads: 2" in out
    with pytest.raises(SystemExit):
        run("simclr_r18q_cifar10", "--list", "--bogus", "train.epochs=3")
