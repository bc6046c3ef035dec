"""Tiny recipes over the real CIFAR-10 images, shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path


def tiny_recipe(out_dir: Path, cifar_root: Path, method: str = "simclr", **overrides) -> dict:
    """A recipe dict that trains in seconds: 8 images per class, 16 px views, tiny heads."""
    heads = {
        "simclr": {"proj_hidden_dim": 32, "proj_out_dim": 16},
        "moco_v2": {"proj_hidden_dim": 32, "proj_out_dim": 16, "queue_size": 64, "base_momentum": 0.99},
        "byol": {"proj_hidden_dim": 32, "proj_out_dim": 16, "pred_hidden_dim": 32, "base_momentum": 0.99},
        "rotnet": {},
    }[method]
    recipe = {
        "name": f"{method.replace('_', '')}-r18q-cifar10",
        "arch": "resnet18_cifar_quarter",
        "method": {"name": method, **heads},
        "data": {"path": str(cifar_root), "image_size": 32, "limit_per_class": 8},
        "augment": {"preset": "simclr", "size": 16, "jitter_strength": 0.5},
        "optim": {"name": "sgd", "lr": 0.05, "warmup_epochs": 1},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1, "seed": 3},
        "run": {
            "out_dir": str(out_dir),
            "checkpoint_every_steps": 3,
            "log_every_steps": 1,
            "knn_every_epochs": 0,
            "knn_k": 5,
            "export": False,
        },
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        recipe[section][field] = value
    return recipe
