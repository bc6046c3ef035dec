"""One training loop for every method.

    trainer = Trainer(load_recipe("simclr_r18q_cifar10"), resume=True)
    result = trainer.fit()        # -> TrainResult(out_dir, export_dir, knn)

What it does, in order: joins the process group when launched by torchrun, decodes the data
into memory, builds ``zoo.create_model(arch)`` and the method around it, then per step draws
the views (:mod:`zoo.training.data`), runs the method's ``training_step`` under autocast
(bf16 on CPUs with bf16 instructions, else fp32; bf16 or fp16 with loss scaling on GPU) in
channels-last layout, checks the loss is finite, steps the optimiser with a warm-up + cosine
schedule and calls the method's hooks. Every ``checkpoint_every_steps`` and at the end it
writes a checkpoint atomically; ``metrics.csv`` gets a row every ``log_every_steps`` steps
(and TensorBoard too, if installed); the online kNN monitor runs every ``knn_every_epochs``
epochs. The end of a run is an exported zoo folder (safetensors + ONNX + card with the
recipe, curves and the measured evaluation).

Methods stay plain modules: nothing here is method-specific beyond the hooks of
:class:`zoo.training.methods.Method`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn
from zoo.training import distributed as dist_utils
from zoo.training.augment import (
    ViewConfig,
    build_views,
    byol_views,
    multicrop_views,
    simclr_views,
)
from zoo.training.checkpoint import (
    CHECKPOINT_NAME,
    Progress,
    has_checkpoint,
    load_checkpoint,
    parts_manifest,
    resume_note,
    save_checkpoint,
)
from zoo.training.data import (
    EpochBatches,
    LazyImages,
    evaluation_batches,
    find_split,
    load_split,
    step_seed,
    steps_per_epoch,
    subset_per_class,
)
from zoo.training.methods import Method, get_method
from zoo.training.methods.base import DataInfo, MethodInputError
from zoo.training.optim import LARS, warmup_cosine
from zoo.training.recipe import Recipe

from zoo.errors import ZooError
from zoo.folder import atomic_write_text
from zoo.machine import cpu_precision, device_name
from zoo.progress_bar import progress_bar

METRICS_NAME = "metrics.csv"
KNN_NAME = "knn.csv"


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the message gives the step and the kept checkpoint."""


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    export_dir: Path | None
    steps: int
    finished: bool
    knn: list[dict[str, Any]]
    #: Why an unfinished run stopped: ``"max_steps"``, or the signal (``"SIGTERM"``, ``"SIGINT"``).
    stopped_by: str | None = None


def compile_pays(device: torch.device) -> bool:
    """Whether ``train.compile: auto`` compiles the model: on GPUs, and on CPUs with AMX tiles.

    Measured with the quarter-width CIFAR ResNet-18 in bf16 (training/README.md, "Budget"): on an
    Intel Xeon with AMX, torch.compile made training steps ~1.4x faster; on an AMD EPYC with
    AVX-512 bf16 but no AMX it made them 3% slower (1 thread) to 15% slower (the half-width
    network, 2 threads), so there eager mode is the faster default.
    """
    if device.type == "cuda":
        import importlib.util

        return importlib.util.find_spec("triton") is not None  # Inductor's GPU kernels need it
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, but the only probe torch has
    return bool(amx and amx())


def view_configs(recipe: Recipe) -> list[ViewConfig]:
    """The recipe's views (normalised with ImageNet statistics, as every zoo encoder)."""
    a = recipe.augment
    if a.preset == "simclr":
        views = simclr_views(a.size, blur=a.blur, strength=a.jitter_strength)
    elif a.preset == "byol":
        views = byol_views(a.size, blur=a.blur)
    else:
        views = multicrop_views(
            a.size,
            a.local_size,
            a.num_local,
            global_scale=a.global_scale,
            local_scale=a.local_scale,
            blur=a.blur,
        )
    return [
        dataclasses.replace(
            v,
            # multicrop's crops take their scales from global_scale / local_scale, not min_scale.
            scale=v.scale if a.preset == "multicrop" else (a.min_scale, v.scale[1]),
            grayscale_p=a.grayscale_p,
        )
        for v in views
    ]


class Trainer:
    """Runs one recipe. ``resume=True`` continues from ``out_dir/checkpoint.pt`` if present.

    Args:
        recipe: what to train.
        resume: continue an interrupted run exactly (same recipe required).
        command: the command line that started the run, recorded in the model card.
        progress: show a progress bar (default: when stderr is a terminal; otherwise a log
            line every ``run.log_every_steps`` steps).
    """

    def __init__(
        self, recipe: Recipe, *, resume: bool = False, command: str = "", progress: bool | None = None
    ) -> None:
        self.recipe = recipe
        self.resume = resume
        self.command = command
        self.show_bar = sys.stderr.isatty() if progress is None else progress
        self.out_dir = Path(recipe.run.out_dir.replace("{name}", recipe.name))
        self.rank = int(os.environ.get("RANK", "0"))  # torchrun's, until the set-up joins the group

    def _mean_over_ranks(self, out: dict[str, torch.Tensor]) -> dict[str, float]:
        """The step's logged values averaged over ranks: a loss over each rank's own anchors
        (SimCLR, MoCo) would otherwise read as rank 0's alone and move with the world size.
        Every rank reaches the same log steps, so the collective cannot leave one waiting."""
        if not self.distributed:
            return {k: float(v) for k, v in out.items()}
        as_scalar = partial(torch.as_tensor, dtype=torch.float32, device=self.device)
        values = torch.stack([as_scalar(v).detach().reshape(()) for v in out.values()])
        return dict(zip(out, dist_utils.all_reduce_mean(values).tolist(), strict=True))

    # ---------------------------------------------------------------- set-up

    def _setup(self) -> None:
        r = self.recipe
        want_cuda = r.train.device == "cuda" or (r.train.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise ZooError("train.device=cuda but CUDA is not available; use train.device=auto")
        # The backend follows the device the run trains on, not the machine: NCCL cannot carry
        # the CPU tensors of `train.device=cpu` on a GPU machine.
        self.distributed = dist_utils.init_from_env("nccl" if want_cuda else "gloo")
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        if r.train.threads:
            torch.set_num_threads(r.train.threads)
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if want_cuda else "cpu")
        if want_cuda:
            # Every step has the same shapes, so cuDNN's timed choice of kernels pays at once.
            torch.backends.cudnn.benchmark = True
        else:
            from zoo import memory

            # Every step frees and allocates the same activations again: keep them in the heap
            # rather than page-fault them in anew (3-8% of a CPU step; zoo.memory).
            memory.keep_freed_memory()
        if r.train.batch_size % self.world:
            raise ZooError(
                f"train.batch_size {r.train.batch_size} is not divisible by {self.world} processes"
            )
        self.local_batch = r.train.batch_size // self.world
        precision = r.train.precision
        if precision == "auto":
            if self.device.type == "cpu":
                precision = cpu_precision(precision)
            else:
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if precision == "fp16" and self.device.type == "cpu":
            raise ZooError("train.precision=fp16 needs a GPU; use bf16 or fp32 on CPU")
        self.precision = precision
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")

        # Data first: a method sizes its per-sample state (memory banks, pseudo-labels) from
        # it. Decoded once (rank 0 first, so the others read its cache).
        data_root = Path(r.data.path)
        with self._rank0_first():
            self.images, self.labels, self.classes = load_split(
                data_root / r.data.train_split,
                r.data.image_size,
                limit_per_class=r.data.limit_per_class,
                in_memory=r.data.in_memory,
            )

        # Model initialisation is identical on every rank (DDP also broadcasts rank 0's).
        _seed_everything(r.train.seed)
        import zoo
        from zoo.registry import get_arch

        backbone = zoo.create_model(r.arch).backbone
        method_cls = get_method(r.method_name)
        self.method: Method = method_cls(backbone, get_arch(r.arch).embed_dim, r.method)
        if r.run.export_backbone == "momentum" and self.method.momentum_backbone() is None:
            raise ZooError(
                f"run.export_backbone=momentum: {r.method_name} keeps no momentum copy of its backbone"
                f"{' in this configuration' if self.method.momentum_backbone_name else ''};"
                " use run.export_backbone=online"
            )
        self._provide_needs(data_root / r.data.train_split)
        if r.train.sync_batchnorm and self.method.shuffles_keys:
            # Global statistics for the key encoder would give keys and queries the same batch
            # statistics again: the shortcut shuffling BN exists to block. Refused in one process
            # too, where the setting does nothing yet, so the recipe fails before it meets torchrun.
            raise ZooError(
                f"train.sync_batchnorm would undo {r.method_name}'s shuffling BN (keys are encoded in"
                " a batch shuffled across processes, each normalised by its own statistics);"
                " set train.sync_batchnorm=false"
            )
        if r.train.sync_batchnorm and self.distributed and self.device.type == "cpu":
            raise ZooError(
                "train.sync_batchnorm needs GPUs: torch's SyncBatchNorm has no CPU kernel;"
                " set train.sync_batchnorm=false for gloo runs on CPU"
            )
        if r.train.sync_batchnorm and self.distributed and r.run.bn_recalibration_images:
            # The re-estimation runs on rank 0 alone; a SyncBatchNorm in training mode would
            # wait for the other ranks' statistics.
            raise ZooError(
                "run.bn_recalibration_images cannot be combined with train.sync_batchnorm in a"
                " distributed run; set one of them off"
            )
        if r.train.sync_batchnorm and self.distributed:
            from zoo.training.batch_norm import SplitBatchNorm2d

            if any(isinstance(m, SplitBatchNorm2d) for m in self.method.modules()):
                raise ZooError(
                    "train.sync_batchnorm would undo method.bn_splits (batch norm over groups of each"
                    " process's batch); set one of them off"
                )
            self.method = nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
        self.method.to(self.device)
        if r.train.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.method
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.method, device_ids=ids)
        self.compiled = compile_pays(self.device) if r.train.compile == "auto" else r.train.compile
        if self.compiled:
            self.model = torch.compile(self.model)
        self.optimizer = self._optimizer()

        views = view_configs(r)
        try:
            self.augment = build_views(views, method_cls.view_spec(r.method), r.augment.backend)
        except ValueError as e:
            raise ZooError(f"augment: {r.method_name} cannot use these views: {e}") from None
        self.steps_per_epoch = steps_per_epoch(len(self.images), self.local_batch, self.world)
        if self.steps_per_epoch < 1:
            raise ZooError(
                f"{data_root / r.data.train_split}: {len(self.images)} images are fewer than one global"
                f" batch ({r.train.batch_size}); lower train.batch_size"
            )
        self.total_steps = self.steps_per_epoch * r.train.epochs
        self.warmup_steps = round(r.optim.warmup_epochs * self.steps_per_epoch)
        self.eval_size = r.augment.size
        self.mean, self.std = views[0].mean, views[0].std

    def _provide_needs(self, split: Path) -> None:
        """What the method declared in ``needs`` (labels, a teacher) and its data set-up;
        every problem is one error here, before training starts."""
        needs, name = self.method.needs, self.recipe.method_name
        if needs.labels and len(self.classes) < 2:
            raise MethodInputError(
                f"{name} trains with class labels, but {split} has {len(self.classes)} class folder"
                f" ({', '.join(self.classes)}): it is unlabelled. Use a split with one folder per class"
            )
        if needs.teacher:
            import zoo

            source = getattr(self.recipe.method, "teacher", "")
            if not source:
                raise MethodInputError(f"{name} distils a teacher: set method.teacher (a zoo name or folder)")
            try:
                teacher = zoo.load(source, progress=False)
            except Exception as e:  # any failure to load is the same problem for the user
                raise MethodInputError(
                    f"method.teacher: the teacher {source!r} does not load ({e}); give a zoo name"
                    " (zoo list) or an exported folder"
                ) from None
            for p in teacher.parameters():
                p.requires_grad_(False)
            self.method.set_teacher(teacher.eval(), teacher.embed_dim)
        self.method.setup_data(DataInfo(len(self.images), len(self.classes), self.recipe.train.seed))

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.recipe.optim
        self.base_lr = o.lr * self.recipe.train.batch_size / 256
        groups = []
        for g in self.method.param_groups():
            if not g["params"]:
                continue
            exclude = bool(g.get("exclude_decay", False))
            groups.append(
                {
                    "params": g["params"],
                    "name": g["name"],
                    "weight_decay": 0.0 if exclude else o.weight_decay,
                    "lars_exclude": exclude,
                    "fixed_lr": bool(g.get("fixed_lr", False)),
                    "lr_scale": float(g.get("lr_scale", 1.0)),
                }
            )
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=self.base_lr, momentum=o.momentum, weight_decay=o.weight_decay)
        if o.name == "lars":
            return LARS(
                groups, lr=self.base_lr, momentum=o.momentum, weight_decay=o.weight_decay, eta=o.lars_eta
            )
        return torch.optim.AdamW(groups, lr=self.base_lr, betas=o.betas, weight_decay=o.weight_decay)

    @contextlib.contextmanager
    def _rank0_first(self):
        if self.distributed and self.rank != 0:
            torch.distributed.barrier()
        yield
        if self.distributed and self.rank == 0:
            torch.distributed.barrier()

    # ---------------------------------------------------------------- the loop

    def fit(self) -> TrainResult:
        # Logged before the set-up (decoding the data, building the model), so that the minutes
        # `ship` charges from the log include it.
        self.log(f"setting up {self.recipe.name}")
        self._setup()
        r = self.recipe
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.out_dir / CHECKPOINT_NAME
        recipe_dict = r.to_dict()
        progress = Progress()
        note = resume_note(self.out_dir, self.resume)
        if note:  # `--resume` is "continue if there is something to continue": say which it was
            self.log(note)
        if self.resume and has_checkpoint(ckpt_path):
            progress = load_checkpoint(
                ckpt_path,
                model=self.method,
                optimizer=self.optimizer,
                scaler=self.scaler,
                recipe=recipe_dict,
                log=self.log,
                owner=True,
            )
        elif has_checkpoint(ckpt_path):
            raise ZooError(
                f"{ckpt_path if ckpt_path.is_file() else parts_manifest(ckpt_path)} exists: pass --resume"
                " to continue that run, or choose another run.out_dir"
            )
        progress.set_length(r.train.epochs)
        if self.distributed:
            # Each rank reads the checkpoint from its own filesystem (DDP synchronised the weights
            # when it was built, before this): a node that cannot see rank 0's out_dir would start
            # over while the others continue, out of step for good.
            steps = dist_utils.gather_no_grad(torch.tensor([progress.step], device=self.device))
            steps = sorted(set(steps.tolist()))
            if len(steps) > 1:
                raise ZooError(
                    f"the processes resumed at different steps ({', '.join(map(str, steps))}): run.out_dir"
                    f" ({self.out_dir}) must be one folder that every node sees"
                )
        if self.rank == 0:
            atomic_write_text(self.out_dir / "recipe.yaml", r.to_yaml())
        logger = _CsvLogger(self.out_dir / METRICS_NAME, progress.step, enabled=self.rank == 0)
        knn_log = _CsvLogger(self.out_dir / KNN_NAME, progress.step, enabled=self.rank == 0)
        tb = _tensorboard(self.out_dir) if self.rank == 0 else None
        max_steps = r.train.max_steps or self.total_steps
        bar = progress_bar(
            self.total_steps, r.name, "step", enabled=self.show_bar and self.rank == 0, initial=progress.step
        )
        last_saved = progress.step
        window_start, window_views = time.perf_counter(), 0
        window_cpu = time.process_time()
        self.log(
            f"{r.name}: {r.method_name} on {r.arch}, {len(self.images)} images, {self.world} process(es),"
            f" batch {r.train.batch_size}, {self.steps_per_epoch} steps/epoch x {r.train.epochs} epochs,"
            f" {self.precision}, {'compiled' if self.compiled else 'eager'},"
            f" {torch.get_num_threads()} threads on {device_name(self.device.type)}; out: {self.out_dir}"
        )
        self.method.train()
        stopped = False
        # A process stopped (Ctrl-Z, SIGSTOP) and continued gets SIGCONT: the time it stood still is
        # not training time, for the views/s window and for the minutes `ship` charges from the log.
        watch = _SignalWatch(stop=not self.distributed)
        try:
            while progress.epoch < r.train.epochs and not stopped:
                epoch = progress.epoch
                batches = EpochBatches(
                    self.images,
                    self.labels,
                    self.augment,
                    batch_size=self.local_batch,
                    epoch=epoch,
                    seed=r.train.seed,
                    rank=self.rank,
                    world_size=self.world,
                )
                loader = torch.utils.data.DataLoader(
                    batches,
                    batch_size=None,
                    sampler=range(progress.step_in_epoch, len(batches)),
                    num_workers=r.augment.workers,
                    # Its own generator: a loader draws a base seed when iterated, and from torch's
                    # global one that would shift the RNG of steps that use it (NPID's noise
                    # samples, dropout) between a resumed run and an uninterrupted one.
                    generator=torch.Generator(),
                )
                # A resumed epoch (step_in_epoch > 0) already had its pass: the result is in the
                # method's buffers, restored from the checkpoint.
                if progress.step_in_epoch == 0 and progress.step < max_steps:
                    self._epoch_pass(epoch)
                needs = self.method.needs
                for views, labels, indices in loader:
                    if progress.step >= max_steps:
                        stopped = True
                        break
                    batch = {}
                    if needs.indices:
                        batch["indices"] = indices.to(self.device)
                    if needs.labels:
                        batch["labels"] = labels.to(self.device)
                    step_cpu = time.process_time()
                    out = self._step(views, progress.step, epoch, batch)
                    if watch.continued():
                        self.log("continued after a stop: the time stopped is not charged")
                        # A new window from this step's start; its wall time (the stop inside it
                        # aside) is taken as its CPU time: a stopped process uses none.
                        window_start = time.perf_counter() - (time.process_time() - step_cpu)
                        window_views, window_cpu = 0, step_cpu
                    progress.step += 1
                    progress.step_in_epoch += 1
                    window_views += sum(len(v) for v in views) * self.world
                    bar.update(1)
                    if progress.step % r.run.log_every_steps == 0 or progress.step == max_steps:
                        elapsed = time.perf_counter() - window_start
                        row = {
                            "step": progress.step,
                            "epoch": epoch,
                            "lr": self.optimizer.param_groups[0]["lr"],
                            **self._mean_over_ranks(out),
                            "views_per_s": round(window_views / max(elapsed, 1e-9), 1),
                            # CPU seconds of this process since the last row: their sum over the
                            # rows is the run's compute, whatever else shared the machine.
                            "cpu_s": round(time.process_time() - window_cpu, 3),
                        }
                        self._report(row, elapsed, logger, tb, bar)
                        window_start, window_views = time.perf_counter(), 0
                        window_cpu = time.process_time()
                    if progress.step % r.run.checkpoint_every_steps == 0:
                        self._save(ckpt_path, progress, recipe_dict)
                        last_saved = progress.step
                    if watch.stop_signal:
                        self.log(f"{watch.stop_signal}: stopping after step {progress.step}, saved to resume")
                        stopped = True
                        break
                if stopped:
                    break
                progress.epoch += 1
                progress.step_in_epoch = 0
                every = r.run.knn_every_epochs
                if every and progress.epoch % every == 0 and progress.epoch < r.train.epochs:
                    result = self._monitor(progress)
                    knn_log.write(result)
                    if tb is not None:
                        tb.add_scalar("knn/top1", result["top1"], progress.step)
                self._save(ckpt_path, progress, recipe_dict)  # epoch boundaries are cheap to resume
                last_saved = progress.step
        finally:
            watch.close()
            bar.close()  # on errors too: an open bar would swallow the start of the error's line
        if last_saved != progress.step:
            self._save(ckpt_path, progress, recipe_dict)
        finished = progress.epoch >= r.train.epochs
        export_dir = None
        if finished:
            result = self._monitor(progress)
            knn_log.write(result)
            self._save(ckpt_path, progress, recipe_dict)  # with the final reading in progress.knn
            if self.rank == 0 and r.run.export:
                from zoo.training.publish import export_run

                export_dir = export_run(self, progress)
        if tb is not None:
            tb.close()
        if self.distributed:
            torch.distributed.barrier()
        stopped_by = None if finished else watch.stop_signal or "max_steps"
        return TrainResult(self.out_dir, export_dir, progress.step, finished, progress.knn, stopped_by)

    def _report(self, row: dict[str, Any], elapsed: float, logger: _CsvLogger, tb: Any, bar: Any) -> None:
        """One metrics row to the CSV, TensorBoard and the progress bar (or the log)."""
        logger.write(row)
        if tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch"):
                    tb.add_scalar(f"train/{k}", v, row["step"])
        if self.show_bar:
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        else:
            eta = (self.total_steps - row["step"]) * elapsed / max(1, self.recipe.run.log_every_steps)
            self.log(
                f"epoch {row['epoch']} step {row['step']}/{self.total_steps} loss {row['loss']:.4f}"
                f" lr {row['lr']:.4g} {row['views_per_s']:.0f} views/s eta {_duration(eta)}"
            )

    def _epoch_pass(self, epoch: int) -> None:
        """The method's pass over the whole training split before ``epoch`` (k-means,
        self-labelling, prototypes): every rank embeds every image, so all ranks reach the
        same state without a collective."""
        method = self.method
        if not method.needs.epoch_pass or not method.epoch_pass_due(epoch):
            return
        start = time.perf_counter()
        with torch.inference_mode():
            feats = self.embed(self.images, encoder=method.epoch_encoder())
        reset = method.on_epoch_start(epoch, torch.from_numpy(feats))
        for p in reset or ():
            self.optimizer.state.pop(p, None)  # a re-initialised layer starts without momentum
        seconds = time.perf_counter() - start
        self.log(f"epoch pass before epoch {epoch}: {len(feats)} images ({seconds:.0f} s)")

    def _step(
        self, views: list[torch.Tensor], step: int, epoch: int, batch: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        r = self.recipe
        factor = warmup_cosine(step, self.total_steps, self.warmup_steps, r.optim.final_lr_ratio)
        for g in self.optimizer.param_groups:
            # lr_scale: a group's own multiple of the schedule (e.g. a GAN's two players)
            lr = self.base_lr if g.get("fixed_lr") else self.base_lr * factor
            g["lr"] = lr * g.get("lr_scale", 1.0)
        self.method.schedule(step, self.total_steps, epoch)
        # What the step draws from torch's generator (MAE's masks, NPID's noise samples, DCGAN's
        # latents, shuffling BN's permutation) comes from a seed of (seed, epoch, step, rank):
        # each rank draws its own (one seed on every rank repeated the same masks and noise on
        # all of them), and a resumed run draws what an uninterrupted one would.
        torch.manual_seed(step_seed(r.train.seed, epoch, step, self.rank, "model"))
        fmt = torch.channels_last if r.train.channels_last else torch.contiguous_format
        views = [v.to(self.device, non_blocking=True).contiguous(memory_format=fmt) for v in views]
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            out = self.model(views, **(batch or {}))
        loss = out["loss"]
        if not torch.isfinite(loss.detach()).all():
            self._diverged(f"loss is {float(loss.detach())} at step {step + 1} (epoch {epoch})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.method.before_optimizer_step(epoch)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.method.after_optimizer_step()
        # The schedules' values come from the method itself, outside the compiled forward.
        logged = {k: torch.tensor(float(v)) for k, v in self.method.logged().items()}
        return {**{k: v.detach() for k, v in out.items()}, **logged}

    def _diverged(self, what: str) -> NoReturn:
        ckpt = self.out_dir / CHECKPOINT_NAME
        kept = "no checkpoint was written yet"
        if ckpt.is_file():
            kept = f"the last good checkpoint {ckpt} is kept"
        raise TrainingDiverged(
            f"{what}; training stopped and {kept}. Lower optim.lr, add warm-up (optim.warmup_epochs)"
            " or use train.precision=fp32"
        )

    def _save(self, path: Path, progress: Progress, recipe: dict[str, Any]) -> None:
        # A finite loss is computed before the update: an update can still make weights (or a
        # momentum copy, or BatchNorm's statistics) non-finite. Such a state is never saved, so
        # "the last good checkpoint" stays true. Every rank checks: they hold the same weights.
        for name, value in self.method.state_dict().items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                self._diverged(f"{name} became non-finite at step {progress.step} (epoch {progress.epoch})")
        if self.rank == 0:
            save_checkpoint(
                path,
                model=self.method,
                optimizer=self.optimizer,
                scaler=self.scaler,
                progress=progress,
                recipe=recipe,
            )

    # ---------------------------------------------------------------- evaluation

    @torch.no_grad()
    def embed(
        self,
        images: torch.Tensor | LazyImages,
        indices: torch.Tensor | None = None,
        *,
        autocast: bool = True,
        encoder: nn.Module | None = None,
    ) -> np.ndarray:
        """Backbone features of stored uint8 images (those at ``indices``, default all;
        centre crop, eval mode), float32 (N, D). ``autocast=False`` computes in fp32, as
        ``zoo eval`` does (the final evaluation); the monitor uses the training precision.
        ``encoder`` replaces the backbone (a method's epoch pass: e.g. backbone + head)."""
        backbone = self.method.backbone if encoder is None else encoder
        was_training = backbone.training
        backbone.eval()
        feats = []
        fmt = torch.channels_last if self.recipe.train.channels_last else torch.contiguous_format
        for x in evaluation_batches(images, self.eval_size, self.mean, self.std, indices=indices):
            x = x.to(self.device).contiguous(memory_format=fmt)
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=autocast and self.amp_dtype is not None,
            ):
                feats.append(backbone(x).float().cpu())
        backbone.train(was_training)
        return torch.cat(feats).numpy()

    def evaluation_backbone(self) -> nn.Module:
        """The backbone that evaluations embed with and the export ships: the training one (or
        its momentum copy, ``run.export_backbone: momentum``), or with
        ``run.bn_recalibration_images`` a copy of it whose batch-norm statistics are
        re-estimated on that many whole training images (centre crops, as embedded; always the
        same images, drawn with ``train.seed``; no labels). The training backbone is left as it is."""
        method, run = self.method, self.recipe.run
        # _setup refused a momentum export from a method without a momentum copy.
        source = method.momentum_backbone() if run.export_backbone == "momentum" else method.backbone
        n = run.bn_recalibration_images
        if not n:
            return source
        from zoo.training.batch_norm import recalibrated, recalibration_indices

        idx, batch = recalibration_indices(len(self.images), n, self.recipe.train.seed)
        batches = evaluation_batches(self.images, self.eval_size, self.mean, self.std, batch, indices=idx)
        return recalibrated(source, (x.to(self.device) for x in batches))

    def test_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(self, "_test"):
            r = self.recipe
            # Only rank 0 evaluates, so no collective here (the others wait in _monitor).
            images, labels, classes = load_split(
                find_split(r.data.path, r.data.test_split),
                r.data.image_size,
                limit_per_class=r.data.limit_per_class,
                in_memory=r.data.in_memory,
            )
            if classes != self.classes:
                raise ZooError(f"{r.data.path}: the train and test splits have different classes")
            self._test = (images, labels)
        return self._test

    def _monitor(self, progress: Progress) -> dict[str, Any]:
        """Weighted kNN top-1 on the test split or, with ``run.knn_split: holdout``, on held-out
        training images (on rank 0; the others wait)."""
        from zoo.evaluate import knn_predict

        r = self.recipe.run
        start = time.perf_counter()
        result: dict[str, Any] = {"step": progress.step, "epoch": progress.epoch}
        if self.rank == 0:
            if r.knn_split == "holdout":
                from zoo.training.test_resolution import holdout_split

                # The same seeded tenth of each class as the test-resolution chooser holds out.
                bank, query = (torch.from_numpy(i) for i in holdout_split(self.labels.numpy()))
                train_idx = bank[subset_per_class(self.labels[bank], r.knn_train_images)]
                test_idx = query[subset_per_class(self.labels[query], r.knn_test_images)]
                test_images, test_labels = self.images, self.labels
            else:
                test_images, test_labels = self.test_split()
                train_idx = subset_per_class(self.labels, r.knn_train_images)
                test_idx = subset_per_class(test_labels, r.knn_test_images)
            backbone = self.evaluation_backbone()
            train = self.embed(self.images, train_idx, encoder=backbone)
            test = self.embed(test_images, test_idx, encoder=backbone)
            pred = knn_predict(
                train,
                self.labels[train_idx].numpy(),
                test,
                k=r.knn_k,
                temperature=r.knn_temperature,
                num_classes=len(self.classes),
            )
            top1 = round(100.0 * float((pred == test_labels[test_idx].numpy()).mean()), 2)
            result.update(top1=top1, k=r.knn_k, temperature=r.knn_temperature, train_images=len(train_idx))
            result.update(test_images=len(test_idx), split=r.knn_split)
            self.log(
                f"kNN monitor ({'held-out training images' if r.knn_split == 'holdout' else 'test split'}),"
                f" epoch {progress.epoch}: top-1 {top1:.2f}%"
                f" ({time.perf_counter() - start:.0f} s)"
            )
        # A finished run resumed to export again reads the same step again: the new reading
        # replaces the old, as in knn.csv.
        progress.knn = [*(k for k in progress.knn if k["step"] != progress.step), result]
        if self.distributed:
            torch.distributed.barrier()
        return result

    def log(self, message: str) -> None:
        """Print a timestamped line on rank 0 (stderr: the run log)."""
        if self.rank == 0:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------- helpers


def load_run(run_dir: str | Path, method: str | None, *, data: str | None = None) -> tuple[Trainer, Progress]:
    """The trainer of the ``zoo train`` run in ``run_dir`` (its ``recipe.yaml`` and
    ``checkpoint.pt``, finished or not), rebuilt with the trainer's own set-up and checkpoint
    loading (tensors only, ``weights_only=True``), for tools that read a trained method's parts
    beyond its backbone. ``method`` is the method the tool needs (None: any); ``data`` replaces the recipe's
    ``data.path`` (paths are relative to where ``zoo train`` ran)."""
    from zoo.training.recipe import load_recipe

    run_dir = Path(run_dir)
    recipe_path, ckpt = run_dir / "recipe.yaml", run_dir / CHECKPOINT_NAME
    for path in (recipe_path, ckpt):
        if not (path.is_file() or (path == ckpt and has_checkpoint(ckpt))):
            raise ZooError(
                f"{run_dir}: no {path.name}; give the run.out_dir of a `zoo train` run"
                + (f" of {method}" if method else "")
            )
    # Evaluation only: no compiled graph to build; the data path may have moved since the run.
    recipe = load_recipe(recipe_path, ["train.compile=false", *([f"data.path={data}"] if data else [])])
    if method is not None and recipe.method_name != method:
        raise ZooError(f"{run_dir} is a {recipe.method_name} run, not a {method} run")
    if not Path(recipe.data.path).is_dir():
        raise ZooError(
            f"the run's dataset {recipe.data.path} is not a folder here (paths are relative to where"
            " `zoo train` ran); pass --data ROOT"
        )
    trainer = Trainer(recipe)
    trainer._setup()
    progress = load_checkpoint(ckpt, model=trainer.method, optimizer=trainer.optimizer, scaler=trainer.scaler)
    return trainer, progress


class _SignalWatch:
    """Notes SIGCONT, which a stopped process (Ctrl-Z, ``kill -STOP``) receives when it goes on,
    and a request to stop: SIGTERM (what ``kill`` and a machine shutting down send), or SIGINT
    (Ctrl-C) unless it was ignored, as it is for a background job. The run then stops at the
    end of the step, saves its checkpoint and says how to continue; a second Ctrl-C interrupts
    at once. Only the main thread can install handlers; elsewhere (and off POSIX) none fires.
    ``stop=False`` (distributed runs, whose ranks must stop at the same step) leaves SIGTERM and
    SIGINT alone."""

    def __init__(self, *, stop: bool = True) -> None:
        self._continued = False
        self.stop_signal: str | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        handlers = {"SIGCONT": self._on_continue}
        if stop:
            handlers |= {"SIGTERM": self._on_stop, "SIGINT": self._on_stop}
        for name, handler in handlers.items():
            signum = getattr(signal, name, None)
            if signum is None or (name == "SIGINT" and signal.getsignal(signum) == signal.SIG_IGN):
                continue
            self._previous[signum] = signal.signal(signum, handler)

    def _on_continue(self, signum: int, frame: Any) -> None:
        self._continued = True

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.stop_signal == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, from the last checkpoint
        self.stop_signal = signal.Signals(signum).name

    def continued(self) -> bool:
        """Whether the process was continued since the last call."""
        flag, self._continued = self._continued, False
        return flag

    def close(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _CsvLogger:
    """Append rows to a CSV file; on resume, rows past the checkpoint's step are dropped
    (they were logged after the checkpoint by the run that was interrupted). One row per step:
    a row for a step already logged replaces it (resuming a finished run measures its final
    step again, e.g. with the other export_backbone)."""

    def __init__(self, path: Path, resume_step: int, *, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        self.fields: list[str] | None = None
        self.rows: list[dict[str, Any]] = []
        if not enabled:
            return
        if path.is_file() and resume_step > 0:
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.fields = list(rows[0]) if rows else None
            self._rewrite([row for row in rows if int(row["step"]) <= resume_step])
        elif path.is_file():
            path.unlink()

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        # Atomic: a kill during the rewrite must not cost the run its whole history.
        self.rows = rows
        if self.fields:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore", lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_text(self.path, buf.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None:
            self.fields = list(row)
        if self.rows and str(self.rows[-1]["step"]) == str(row["step"]):
            self._rewrite([*self.rows[:-1], row])
            return
        if not self.rows and not self.path.is_file():
            self._rewrite([])
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(row)
        self.rows.append(row)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def _tensorboard(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; metrics.csv has everything
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
