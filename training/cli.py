"""The ``train`` command: ``zoo train RECIPE [key=value ...] [--resume]``.

RECIPE is a YAML file or the name of a published recipe (``training/recipes``); every
``key=value`` overrides one recipe entry (``train.epochs=10``, ``method.temperature=0.2``,
``data.path=/data/cifar10``), parsed as YAML. Launched by ``torchrun``, each process joins
the process group and takes its share of the global batch.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from zoo.errors import ZooError


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("recipe", help="recipe YAML file, or a published recipe name (training/recipes)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe entries")
    parser.add_argument("--resume", action="store_true", help="continue from run.out_dir/checkpoint.pt")
    parser.add_argument(
        "--list", action="store_true", dest="list_only", help="print the resolved recipe and exit"
    )
    return parser


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> None:
    from zoo.training.loop import Trainer
    from zoo.training.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.list_only:
        print(recipe.to_yaml(), end="")
        return
    command = "zoo train " + " ".join(shlex.quote(a) for a in [args.recipe, *args.overrides])
    result = Trainer(recipe, resume=args.resume, command=command).fit()
    from zoo.training.distributed import rank

    if rank() != 0:
        return
    if result.export_dir is not None:
        print(f"exported {result.export_dir}")
    elif not result.finished:
        rest = list(args.overrides)
        if result.stopped_by == "max_steps":
            # Without the step cap that stopped it, the resumed run goes on to the schedule's end
            # (a cap is a change --resume accepts; repeating it would stop again at once).
            rest = [a for a in rest if a.split("=", 1)[0].strip() != "train.max_steps"]
            if load_recipe(args.recipe, rest).train.max_steps:  # the cap is in the recipe file
                rest.append("train.max_steps=0")
        again = "zoo train " + " ".join(shlex.quote(a) for a in [args.recipe, *rest])
        print(f"stopped at step {result.steps}; continue with: {again} --resume")
    else:
        print(f"finished at step {result.steps} in {result.out_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(prog="python -m zoo.training", description=__doc__.split("\n\n")[0])
    )
    args = parser.parse_intermixed_args(argv)  # `RECIPE --resume key=value` too
    try:
        run(args)
    except ZooError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    return 0
