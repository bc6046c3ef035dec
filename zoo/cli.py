"""The ``zoo`` command.

    zoo list [PATTERN]                 registered encoders
    zoo info NAME                      one registry record
    zoo download NAME                  fetch (and convert) weights into the cache
    zoo embed DIR --out FEATURES.npy   features of every image below DIR
    zoo neighbors [DIR]                each image's nearest neighbours (the built-in demo)
    zoo export NAME --out DIR          zoo folder + verified model.onnx
    zoo push NAME_OR_DIR --repo ORG/NAME   publish to a Hugging Face Hub (--dry-run lists the files)
    zoo leaderboard [--format md|csv|json] [--update README.md]   every measured encoder, one table
    zoo convert SRC --from FMT --out DIR   upstream checkpoint -> zoo folder
    zoo card NAME [--out FILE]         the model card
    zoo eval NAME --data DIR           kNN evaluation on an ImageFolder dataset (--protocol
                                       knn|linear|cluster|retrieval|finetune)
    zoo train RECIPE [key=value ...]   train an encoder (training/recipes), --resume to continue
    zoo finetune NAME --data DIR --out DIR [key=value ...]   fine-tune on labelled images
    zoo predict DIR IMAGES...          top-k classes of a fine-tuned classifier folder
    zoo index build --images DIR --out INDEX   gallery index of a folder (zoo index info INDEX)
    zoo serve [--model NAME] [--gallery DIR_OR_INDEX]   the Gradio demo

Errors zoo raises on purpose are printed as one line, ``zoo: error: ...``, with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import zoo
from zoo.errors import ZooError


def _cmd_list(args: argparse.Namespace) -> None:
    names = zoo.list_models(args.pattern)
    if not names:
        raise ZooError(f"no model matches {args.pattern!r}; `zoo list` shows every model")
    rows = [("name", "arch", "method", "data", "dim", "license")]
    for name in names:
        e = zoo.model_info(name)
        rows.append((e.name, e.arch, e.method, e.dataset, str(e.embed_dim), e.license))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cmd_info(args: argparse.Namespace) -> None:
    entry = zoo.model_info(args.name)
    print(json.dumps({**entry.to_dict(), "embed_dim": entry.embed_dim}, indent=2))


def _cmd_download(args: argparse.Namespace) -> None:
    encoder = zoo.load(args.name, sha256=args.sha256)
    print(f"{encoder.name}: ready ({sum(p.numel() for p in encoder.parameters()):,} parameters)")


def _cmd_embed(args: argparse.Namespace) -> None:
    from zoo.folder import atomic_write_bytes, atomic_write_text
    from zoo.images import find_images
    from zoo.output import check_output_file, output_error

    out = Path(args.out)
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")  # as np.save does: feats.v2 -> feats.v2.npy
    paths, skipped_list = out.with_suffix(".paths.txt"), out.with_suffix(".skipped.txt")
    for target in (out, paths, skipped_list):  # before hours of embedding, not after
        check_output_file(target)
    files = find_images(args.images)
    encoder = zoo.load(args.model)
    kwargs = {"batch_size": args.batch_size, "backend": args.backend, "normalize": args.normalize}
    skipped: list[str] = []
    if args.strict:
        feats = encoder.embed(files, progress=True, **kwargs)
    else:
        result = encoder.embed_files(files, progress=True, **kwargs)
        feats, files, skipped = result.features, result.files, result.skipped
        for line in skipped:
            print(f"zoo: warning: skipped {line}", file=sys.stderr)
    import io

    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write_bytes(out, buf.getvalue())
    atomic_write_text(paths, "".join(f"{f}\n" for f in files))
    note = ""
    if skipped:
        atomic_write_text(skipped_list, "".join(f"{line}\n" for line in skipped))
        note = f"; skipped {len(skipped)} unreadable files, listed in {skipped_list}"
    else:
        try:  # a list left by an earlier run would describe other features
            skipped_list.unlink(missing_ok=True)
        except OSError as e:
            raise output_error(e, skipped_list) from None
    print(f"wrote {out} {feats.shape} and {paths}{note}")


def _cmd_neighbors(args: argparse.Namespace) -> None:
    from zoo.images import find_images

    if args.k < 1:
        raise ZooError(f"-k must be at least 1, got {args.k}")
    files = find_images(args.images) if args.images else zoo.sample_images()
    root = Path(args.images) if args.images else files[0].parent
    encoder = zoo.load(args.model)
    # Unreadable files are skipped with a warning, as `zoo embed` does.
    result = encoder.embed_files(files, backend=args.backend, normalize=True, progress=len(files) > 64)
    feats, files = result.features, result.files
    for line in result.skipped:
        print(f"zoo: warning: skipped {line}", file=sys.stderr)
    if len(files) < 2:
        raise ZooError(f"{root}: only {len(files)} readable image; neighbours need at least 2")
    sims = feats @ feats.T
    np.fill_diagonal(sims, -np.inf)
    k = min(args.k, len(files) - 1)
    print(f"{encoder.name}: {len(files)} images from {root}, top-{k} neighbours by cosine similarity")
    for i, f in enumerate(files):
        order = np.argsort(-sims[i])[:k]
        near = ", ".join(f"{_rel(files[j], root)} ({sims[i, j]:.2f})" for j in order)
        print(f"{_rel(f, root)} -> {near}")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _cmd_export(args: argparse.Namespace) -> None:
    from zoo.output import check_output_folder

    check_output_folder(args.out)  # before loading (maybe downloading) the model
    encoder = zoo.load(args.name)
    report = zoo.export(encoder, args.out, onnx=not args.no_onnx, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {report.folder}/ (config.json, model.safetensors, README.md)")
    if report.onnx is not None:
        print(
            f"wrote {report.onnx}: ONNX Runtime matches PyTorch on {report.images_checked} images"
            f" (max abs diff {report.max_abs_diff:.2e}"
            + (f" on features up to {report.feature_scale:.4g})" if report.feature_scale > 1 else ")")
        )


def _cmd_push(args: argparse.Namespace) -> None:
    from zoo.push import push

    result = push(
        args.name,
        args.repo,
        revision=args.revision,
        private=args.private,
        commit_message=args.commit_message,
        dry_run=args.dry_run,
    )
    total = sum(f.size for f in result.files)
    if result.dry_run:
        print(f"dry run: would push {len(result.files)} files ({total:,} bytes) to {result.url}")
        print(f"  ONNX Runtime matches PyTorch (max abs diff {result.onnx_max_abs_diff:.2e}); card checked")
        for f in result.files:
            print(f"  {f.size:>12,}  {f.sha256}  {f.path}")
        print("nothing was uploaded")
        return
    print(f"pushed {len(result.files)} files ({total:,} bytes) in commit {result.commit}")
    if result.deleted:
        print(f"removed {len(result.deleted)} files of earlier pushes: {', '.join(result.deleted)}")
    print(result.url)
    weights = result.file("model.safetensors")
    print(
        "to release a registry entry from it: Weights("
        f'hf_hub_id="{result.repo_id}", hf_revision="{result.commit}", sha256="{weights.sha256}")'
    )


def _cmd_leaderboard(args: argparse.Namespace) -> None:
    from zoo import leaderboard

    if args.update:
        changed = leaderboard.update_file(args.update)
        print(f"{'updated' if changed else 'unchanged'}: the leaderboard in {args.update}")
        return
    print(leaderboard.render(args.format), end="")


def _cmd_convert(args: argparse.Namespace) -> None:
    from zoo.convert import convert_to_folder, detect_format

    fmt = detect_format(args.src) if args.fmt == "auto" else args.fmt
    folder = convert_to_folder(args.src, args.out, fmt=fmt, arch=args.arch, overwrite=args.overwrite)
    arch = json.loads((folder / "config.json").read_text())["zoo"]["arch"]
    print(f"wrote {folder}/ ({fmt} -> {arch}; zoo.load({str(folder)!r}) or `zoo export {folder} --out DIR`)")


def _cmd_card(args: argparse.Namespace) -> None:
    from zoo.cards import render_card
    from zoo.folder import atomic_write_text

    if args.all:
        out_dir = Path(args.out or "model_cards")
        for name in zoo.list_models():
            atomic_write_text(out_dir / f"{name}.md", render_card(zoo.model_info(name)))
        print(f"wrote {len(zoo.list_models())} cards to {out_dir}/")
        return
    if not args.name:
        raise ZooError("give a model NAME or --all")
    text = render_card(zoo.model_info(args.name))
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text)


def _cmd_eval(args: argparse.Namespace) -> None:
    from zoo.evaluate import evaluate

    model: str | zoo.Encoder = args.name
    if args.limit_per_class < 0:
        raise ZooError(f"--limit-per-class must be 0 (every image) or more, got {args.limit_per_class}")
    recording = _eval_record_check(args)
    if args.protocol == "finetune":
        if args.limit_per_class:
            raise ZooError(
                "--limit-per-class applies to the frozen-feature protocols; --protocol finetune takes"
                " --labels-per-class"
            )
        from zoo.finetuning import parse_overrides

        settings = parse_overrides(args.override or [])
        settings.update(label_fraction=args.label_fraction, labels_per_class=args.labels_per_class)
        settings.update(from_scratch=args.from_scratch or args.random_init, epochs=args.epochs)
        result = evaluate(
            args.name,
            args.data,
            protocol="finetune",
            train_split=args.train_split,
            test_split=args.test_split,
            finetune=settings,
        )
        print(json.dumps(result, indent=2))
        if recording:
            _eval_record(args, recording, result, result["protocol"])
        return
    if args.override or args.from_scratch or args.label_fraction or args.labels_per_class:
        raise ZooError(
            "--label-fraction, --labels-per-class, --from-scratch and key=value need --protocol finetune"
        )
    if args.random_init:
        import torch

        # The architecture with seeded random weights: the floor that training must beat.
        torch.manual_seed(0)
        model = zoo.load(args.name, pretrained=False)
    result = evaluate(
        model,
        args.data,
        protocol=args.protocol,
        train_split=args.train_split,
        test_split=args.test_split,
        k=args.k,
        temperature=args.temperature,
        backend=args.backend,
        limit_per_class=args.limit_per_class,
    )
    print(json.dumps(result, indent=2))
    if recording:
        from zoo.evaluate import frozen_how

        _eval_record(args, recording, result, frozen_how(result, args.backend))


def _eval_record_check(args: argparse.Namespace) -> str | None:
    """``--record``'s protocol name, checked before anything runs (None without --record)."""
    if not args.record:
        return None
    from zoo.evaluate import protocol_key, recordable_weights

    if args.limit_per_class:
        # The table states full-split numbers; a subset's would replace one silently.
        raise ZooError("--record keeps full-split numbers; drop --limit-per-class")
    if args.random_init and args.protocol != "finetune":
        raise ZooError("--record does not keep --random-init numbers (the leaderboard's BASELINES hold them)")
    if args.backend in ("onnx-int8", "torch-bf16") and args.protocol != "finetune":
        # The table's frozen-feature numbers are fp32 features; a quantised one would replace them.
        raise ZooError(f"--record keeps fp32 features only; --backend {args.backend} is not recorded")
    recordable_weights(args.name)
    return protocol_key(
        args.protocol,
        k=args.k,
        temperature=args.temperature,
        label_fraction=args.label_fraction,
        labels_per_class=args.labels_per_class,
        from_scratch=args.from_scratch or args.random_init,
        epochs=args.epochs if args.protocol == "finetune" else None,
    )


def _eval_command(args: argparse.Namespace) -> str:
    """The command that reproduces this ``zoo eval`` run, as the measured table shows it."""
    import shlex

    from zoo.evaluate import shown_path

    parts = ["zoo", "eval", args.name, "--data", shown_path(args.data)]
    if args.train_split != "train":
        parts += ["--train-split", args.train_split]
    if args.test_split:
        parts += ["--test-split", args.test_split]
    if args.protocol == "knn":
        parts += ["-k", str(args.k), "--temperature", f"{args.temperature:g}"]
    else:
        parts += ["--protocol", args.protocol]
    if args.backend != "auto" and args.protocol != "finetune":
        parts += ["--backend", args.backend]
    if args.protocol == "finetune":
        if args.labels_per_class is not None:
            parts += ["--labels-per-class", str(args.labels_per_class)]
        else:
            parts += ["--label-fraction", f"{args.label_fraction if args.label_fraction else 0.01:g}"]
        if args.from_scratch or args.random_init:
            parts.append("--from-scratch")
        parts += ["--epochs", str(args.epochs), *(args.override or [])]
    return shlex.join(parts)


def _eval_record(args: argparse.Namespace, protocol: str, result: dict, how: str) -> None:
    from zoo.evaluate import record_eval, recorded_value

    if result.get("k", args.k) != args.k:
        raise ZooError(
            f"--record: the {args.train_split} split has {result['train_images']} images, fewer than"
            f" -k {args.k}, so this is not the table's {protocol}; nothing was recorded"
        )
    path = record_eval(
        args.name,
        args.data,
        args.test_split,
        protocol,
        recorded_value(args.protocol, result),
        how=how,
        command=_eval_command(args),
    )
    print(f"recorded {args.name} {protocol} in {path}", file=sys.stderr)


def _cmd_index_build(args: argparse.Namespace) -> None:
    import zoo.index

    encoder = zoo.load(args.model)
    index = zoo.index.build(
        encoder, args.images, out=args.out, backend=args.backend, batch_size=args.batch_size
    )
    for line in index.skipped:
        print(f"skipped {line}", file=sys.stderr)
    classes = f" in {len(index.classes)} classes" if index.classes else ""
    print(f"wrote {args.out}: {len(index)} images{classes}, {index.dim}-d features of {index.model}")


def _cmd_index_info(args: argparse.Namespace) -> None:
    import zoo.index

    index = zoo.index.load(args.index)
    info = {
        "model": index.model,
        "images": len(index),
        "dim": index.dim,
        "root": str(index.root),
        "classes": index.classes,
        "skipped": index.skipped,
        "fingerprint": index.identity.fingerprint,
        "preprocess_hash": index.identity.preprocess_hash,
    }
    print(json.dumps(info, indent=2))


def _cmd_serve(args: argparse.Namespace) -> None:
    try:
        from zoo.app import AppConfig, launch
    except ImportError as e:
        raise ZooError(f"the demo needs its extra dependencies ({e}): pip install 'zoo-ssl[app]'") from None
    config = AppConfig(
        models=tuple(args.model or ()),
        gallery=Path(args.gallery) if args.gallery else None,
        host=args.host,
        port=args.port,
        backend=args.backend,
    )
    try:
        launch(config)
    except ZooError:
        raise  # its own message (a gallery that cannot be indexed or saved, ...), not the port's
    except OSError as e:
        import errno

        # Gradio's words for a port in use carry no errno; a full disk (copying the examples) does.
        if e.filename is None and e.errno in (None, errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise ZooError(f"cannot serve on {args.host}:{args.port} ({e}); try another --port") from None
        raise ZooError(f"cannot start the demo: {e}") from None


def _cmd_finetune(args: argparse.Namespace) -> None:
    import shlex

    from zoo.finetuning import finetune, parse_overrides

    settings = parse_overrides(args.override)
    for key in ("mode", "label_fraction", "labels_per_class", "epochs"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    # Rebuilt from the parsed arguments (not sys.argv), so the card's command is the run's own.
    parts = ["zoo", "finetune", args.name, "--data", args.data, "--out", args.out]
    for key in ("mode", "label_fraction", "labels_per_class", "epochs"):
        if getattr(args, key) is not None:
            parts += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    command = shlex.join(parts + list(args.override))
    result = finetune(args.name, args.data, args.out, resume=args.resume, command=command, **settings)
    if result.finished:
        val = f"val top-1 {result.top1:.2f}% on {result.val_images} images"
        if result.test_top1 is not None:
            val = (
                f"test top-1 {result.test_top1:.2f}% on {result.test_images} images (chose nothing);"
                f" {val} (epoch {result.best_epoch} kept)"
            )
        print(f"wrote {result.folder}/: {val}")
    else:
        print(f"stopped before the end (max_steps); continue with: {command} --resume")


def _cmd_predict(args: argparse.Namespace) -> None:
    from zoo.images import find_images
    from zoo.predict import Predictor

    files: list[Path] = []
    for item in args.images:
        path = Path(item)
        files += find_images(path) if path.is_dir() else [path]
    predictor = Predictor(args.model, backend=args.backend)
    for f, top in zip(files, predictor.top_k(files, args.k), strict=True):
        print(f"{f}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))


def _cmd_train(args: argparse.Namespace) -> None:
    from zoo.training.cli import run

    run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Self-supervised image encoders: load, embed, export."
    )
    parser.add_argument("--version", action="version", version=f"zoo {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    backends = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")

    p = sub.add_parser("list", help="list registered encoders", description="List registered encoders.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*-r50*'")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "info", help="show one registry record", description="Print a registry record as JSON."
    )
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "download",
        help="fetch weights into the cache",
        description="Download (and convert) an encoder's weights into the cache ($ZOO_HOME).",
    )
    p.add_argument("name", help="name, folder, file, URL or hf-hub:org/name")
    p.add_argument(
        "--sha256",
        help="expected sha256 of the weights file (64 hex digits): of a path, URL or hf-hub: repo's"
        " model.safetensors, or a registry entry's file (must agree with the hash the registry pins)",
    )
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser(
        "embed",
        help="embed a folder of images",
        description="Embed every image below a folder; writes OUT.npy (float32, N x D) and OUT.paths.txt."
        " Unreadable files are skipped with a warning each and listed in OUT.skipped.txt; it fails"
        " only if no image is readable (or, with --strict, at the first unreadable one).",
    )
    p.add_argument("images", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="output .npy file")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL, help="name, folder, file, URL or hf-hub:org/name")
    p.add_argument("--backend", default="auto", choices=backends)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--strict", action="store_true", help="fail at the first unreadable file instead")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser(
        "neighbors",
        help="print each image's nearest neighbours",
        description="Embed a folder (default: the bundled sample images) and print each image's"
        " nearest neighbours.",
    )
    p.add_argument("images", nargs="?", help="folder of images (default: bundled samples)")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL)
    p.add_argument("-k", type=int, default=3, help="neighbours per image")
    p.add_argument("--backend", default="auto", choices=backends)
    p.set_defaults(func=_cmd_neighbors)

    p = sub.add_parser(
        "export",
        help="write a zoo folder + ONNX",
        description="Write config.json, model.safetensors, README.md and a parity-checked model.onnx.",
    )
    p.add_argument("name", help="name, folder, file, URL or hf-hub:org/name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-onnx", action="store_true", help="skip model.onnx")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder that is not an export of this model (replacing zoo's files)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "push",
        help="publish an encoder to a Hugging Face Hub",
        description="Export (for a name) and check a zoo folder, then upload it in one commit to a Hub"
        " repo through huggingface_hub (token: HF_TOKEN or `hf auth login`; HF_ENDPOINT for another"
        " Hub). A folder whose model.onnx does not match its weights, or whose card states a number"
        " without how it was measured, is refused.",
    )
    p.add_argument("name", metavar="NAME_OR_DIR", help="registry name, zoo folder, file or URL")
    p.add_argument("--repo", required=True, help="ORG/NAME of the Hub repo (created if missing)")
    p.add_argument("--revision", help="branch to commit to (default main; created from main if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--commit-message", help="default: 'Upload NAME with zoo'")
    p.add_argument("--dry-run", action="store_true", help="check, list files with sizes and sha256")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser(
        "leaderboard",
        help="every measured encoder in one table",
        description="The leaderboard, rendered from the registry: every encoder's measured kNN, linear,"
        " NMI, fine-tune and img/s numbers, with the random-init baselines.",
    )
    p.add_argument("--format", default="md", choices=("md", "csv", "json"), help="json adds how and command")
    p.add_argument("--update", metavar="FILE", help="rewrite the table between FILE's leaderboard markers")
    p.set_defaults(func=_cmd_leaderboard)

    from zoo.convert import list_formats

    p = sub.add_parser(
        "convert",
        help="convert an upstream checkpoint to a zoo folder",
        description="Convert a self-supervised checkpoint (the authors' release or your own) strictly:"
        " every backbone key mapped, only the format's known heads dropped. Writes a zoo folder"
        " that zoo.load and `zoo export` accept.",
    )
    p.add_argument("src", help="checkpoint file (or TensorFlow checkpoint folder / prefix)")
    p.add_argument(
        "--from",
        dest="fmt",
        default="auto",
        choices=["auto", *(f for f in list_formats() if f != "efficientnet-lite")],
        help="checkpoint format; auto detects it from the keys and names the candidates when ambiguous",
    )
    p.add_argument("--out", required=True, help="output zoo folder")
    p.add_argument("--arch", help="target architecture (default: the format's first that fits)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder that is not a zoo folder of this model (replacing zoo's files)",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "card", help="render a model card", description="Render a model card from the registry."
    )
    p.add_argument("name", nargs="?")
    p.add_argument("--out", help="file (or, with --all, folder) to write instead of printing")
    p.add_argument("--all", action="store_true", help="write every card into --out (default model_cards/)")
    p.set_defaults(func=_cmd_card)

    p = sub.add_parser(
        "eval",
        help="evaluate on an ImageFolder dataset (kNN, linear, clustering, retrieval, fine-tuning)",
        description="Evaluate an encoder on an ImageFolder dataset: on frozen features, weighted kNN top-1"
        " (train split features vote for each test image), linear probe, k-means clustering or retrieval"
        " mAP@k; or fine-tuned on a share of the train split's labels (--protocol finetune).",
    )
    p.add_argument("name", help="name, folder, file, URL or hf-hub:org/name")
    p.add_argument("--data", required=True, help="dataset root with <split>/<class>/<image> folders")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-split", default=None, help="default: val, else test")
    p.add_argument(
        "--protocol",
        default="knn",
        choices=("knn", "linear", "cluster", "retrieval", "finetune"),
        help="knn: weighted kNN top-1; linear: linear probe on frozen features; cluster: k-means"
        " NMI/ARI/Hungarian accuracy on the test split; retrieval: mAP@k of test queries over train;"
        " finetune: top-1 after fine-tuning on --label-fraction / --labels-per-class of the labels",
    )
    p.add_argument(
        "-k", type=int, default=20, help="kNN neighbours (solo-learn 20, lightly 200) / retrieval cutoff"
    )
    p.add_argument(
        "--temperature", type=float, default=0.07, help="kNN temperature (solo-learn 0.07, lightly 0.1)"
    )
    p.add_argument("--backend", default="auto", choices=backends)
    p.add_argument(
        "--limit-per-class",
        type=int,
        default=0,
        metavar="N",
        help="score on the first N images (by file name) of each class of each split, as a recipe"
        " with data.limit_per_class=N trains and scores (not with --protocol finetune or --record)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="evaluate the entry's architecture with random weights (seed 0) instead: a baseline",
    )
    q = p.add_argument_group("finetune protocol (--protocol finetune)")
    labels = q.add_mutually_exclusive_group()
    labels.add_argument("--label-fraction", type=float, help="share of each class that keeps labels (0.01)")
    labels.add_argument("--labels-per-class", type=int, help="or: labelled images per class")
    q.add_argument(
        "--from-scratch",
        action="store_true",
        help="the baseline: the same architecture from random initialisation, on the same labels",
    )
    q.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (default 10)")
    q.add_argument("override", nargs="*", help="further fine-tuning settings as key=value (zoo finetune)")
    p.add_argument(
        "--record",
        action="store_true",
        help="keep the number in the measured table (zoo/data/measured.csv, or $ZOO_RESULTS) with how it"
        " was measured and this command; registry names only",
    )
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "train",
        help="train an encoder from a recipe",
        description="Train a self-supervised encoder from a recipe (training/recipes/*.yaml) with"
        " key=value overrides; the run ends with an exported, evaluated zoo folder.",
    )
    from zoo.training.cli import add_arguments as _train_arguments

    _train_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "finetune",
        help="fine-tune an encoder on a labelled ImageFolder",
        description="Fine-tune an encoder (+ linear head) on DATA/train/<class>/<image> (or DATA/<class>/"
        "<image>), validating on DATA/val (else a held-out share of train) and testing the kept weights"
        " once on DATA/test where there is one (it chooses nothing). Writes a"
        " classifier folder: config.json with class names, model.safetensors (the fine-tuned encoder,"
        " so zoo.load(OUT) works), head.safetensors, a checked model.onnx,"
        " README.md with the accuracy and confusion matrix, metrics.csv, labels.txt. Settings of"
        " zoo.finetuning.FinetuneConfig as key=value (lr=, batch_size=, layer_decay=, encoder_lr_scale=,"
        " label_smoothing=, mixup=, patience=, seed=, threads=, val_fraction=, precision=...).",
    )
    p.add_argument("name", help="encoder: name, folder, file, URL or hf-hub:org/name")
    p.add_argument("--data", required=True, help="ImageFolder dataset")
    p.add_argument("--out", required=True, help="output folder (also holds checkpoint.pt)")
    p.add_argument("--mode", choices=("linear", "partial", "full"), help="what trains (default full)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--label-fraction", type=float, help="share of each class that keeps labels")
    labels.add_argument("--labels-per-class", type=int, help="labelled images per class")
    p.add_argument("--epochs", type=int, help="default 10")
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    p.add_argument("override", nargs="*", help="key=value settings")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "predict",
        help="classify images with a fine-tuned folder",
        description="Print the top-k classes and probabilities of each image under a classifier"
        " folder written by zoo finetune (ONNX Runtime when model.onnx is there, else PyTorch).",
    )
    p.add_argument("model", help="fine-tuned classifier folder")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("-k", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "index",
        help="build or inspect a gallery index",
        description="Gallery indexes: one model's features of a folder of images, for retrieval"
        " (zoo serve --gallery INDEX).",
    )
    index_sub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    q = index_sub.add_parser(
        "build",
        help="embed a folder into an index",
        description="Embed every image below DIR (labels from ImageFolder sub-folders) into INDEX."
        " An existing INDEX of the same model is updated (only new or changed images are"
        " embedded); one of another model is refused.",
    )
    q.add_argument("--model", default=zoo.DEFAULT_MODEL, help="name, folder, file, URL or hf-hub:org/name")
    q.add_argument("--images", required=True, help="folder of images (DIR/<class>/<image> gives labels)")
    q.add_argument("--out", required=True, help="index file to write (.npz)")
    q.add_argument("--backend", default="auto", choices=backends)
    q.add_argument("--batch-size", type=int, default=64)
    q.set_defaults(func=_cmd_index_build)
    q = index_sub.add_parser(
        "info", help="describe an index", description="Print an index's summary as JSON."
    )
    q.add_argument("index")
    q.set_defaults(func=_cmd_index_info)

    p = sub.add_parser(
        "serve",
        help="start the Gradio demo",
        description="Serve the demo: retrieval, clustering and model comparison on uploaded images."
        " With no arguments: the default model and the gallery bundled with zoo (19 labelled public-domain"
        " photos of 5 classes, zoo/data/gallery), no network needed.",
    )
    p.add_argument(
        "--model",
        action="append",
        help="model to offer and select first (repeatable; names, zoo folders or files);"
        " registered models are always offered",
    )
    p.add_argument(
        "--gallery",
        help="folder of images (ImageFolder: one sub-folder per class; a classes.txt there names them)"
        " or index file (default: the labelled gallery bundled with zoo)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--backend", default="auto", choices=backends)
    p.set_defaults(func=_cmd_serve)
    return parser


#: Commands that run an encoder over batch after batch. They keep freed memory in the heap for the
#: next batch (zoo.memory: a torch feature pass over 1,500 CIFAR-10 images at 48 px took 0.7-1.6
#: million minor page faults, and under 5,000 with it; benchmarks/feature_pass.py). A process that
#: ends with its command can afford to hold its peak; ``serve`` stays out, a demo left running
#: should hand memory back.
_BATCH_COMMANDS = frozenset({"embed", "neighbors", "eval", "finetune", "predict", "index build"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse gives a trailing `key=value ...` positional nothing once options came between
    # it and the command's first positional; collect those here (zoo train / finetune / eval).
    late = [e for e in extra if "=" in e and not e.startswith("-")]
    dest = next((d for d in ("override", "overrides") if isinstance(getattr(args, d, None), list)), None)
    if extra and (late != extra or dest is None):
        parser.parse_args(argv)  # argparse's own error for what is really unrecognised
    if late:
        setattr(args, dest, [*getattr(args, dest), *late])
    command = " ".join(filter(None, (args.command, getattr(args, "index_command", None))))
    if command in _BATCH_COMMANDS:
        from zoo.memory import keep_freed_memory

        keep_freed_memory()
    try:
        args.func(args)
    except ZooError as e:
        print(f"zoo: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's refusal (disk full, permissions...), not a bug in zoo
        where = f" ({e.filename})" if e.filename else ""
        print(f"zoo: error: {_one_line(e.strerror or str(e))}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(message: str) -> str:
    """Messages from libraries may span lines (urllib's, torch's); the CLI prints one."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
