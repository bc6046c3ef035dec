"""Evaluation of frozen encoders on ImageFolder datasets.

Weighted kNN (Wu et al. 2018, as in DINO and solo-learn): each test feature takes its
``k`` most cosine-similar training features, which vote for their class with weight
``exp(similarity / T)``; top-1 is the share of test images whose heaviest class is right.
solo-learn's protocol is k=20, T=0.07; lightly's is k=200, T=0.1.

Besides kNN (:func:`knn_eval`), :func:`evaluate` runs a linear probe on frozen features,
k-means clustering scored by NMI / ARI / Hungarian accuracy, and retrieval mAP@k.

Features are cached per encoder weights and file list, so a second protocol on the same
data costs no forward pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from zoo.encoder import Encoder
from zoo.errors import ImageError
from zoo.images import IMAGE_SUFFIXES


def default_test_split(root: str | os.PathLike) -> str:
    """The split a dataset folder is scored on when none is named: ``val`` where there is one
    (Imagenette), else ``test`` (CIFAR-10)."""
    return "val" if (Path(root) / "val").is_dir() else "test"


def image_folder(
    root: str | os.PathLike, *, limit_per_class: int = 0
) -> tuple[list[Path], np.ndarray, list[str]]:
    """``(files, labels, classes)`` of an ImageFolder split (``root/<class>/<image>``), in
    class then file-name order; with ``limit_per_class``, only the first that many images
    of each class (a recipe's ``data.limit_per_class`` and ``zoo eval --limit-per-class``
    pick the same images)."""
    if limit_per_class < 0:
        raise ValueError(f"limit_per_class must be >= 0, got {limit_per_class}")
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: dataset split folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ImageError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    files: list[Path] = []
    labels: list[int] = []
    for i, c in enumerate(classes):
        found = sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ImageError(f"{root / c}: class folder holds no images")
        if limit_per_class:
            found = found[:limit_per_class]
        files += found
        labels += [i] * len(found)
    return files, np.asarray(labels, dtype=np.int64), classes


def knn_predict(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    *,
    k: int,
    temperature: float,
    num_classes: int,
) -> np.ndarray:
    """Weighted-kNN class predictions for ``test`` (features are L2-normalised here)."""
    train_t = torch.nn.functional.normalize(torch.from_numpy(train).float(), dim=1)
    test_t = torch.nn.functional.normalize(torch.from_numpy(test).float(), dim=1)
    labels = torch.from_numpy(train_labels)
    k = min(k, len(train_t))
    preds = []
    for chunk in test_t.split(1024):
        sim, idx = (chunk @ train_t.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), num_classes)
        # Shifted by each row's largest similarity (topk sorts, so column 0): the same argmax,
        # without exp(1/T) overflowing float32 to inf for T below ~0.011.
        votes.scatter_add_(1, labels[idx], ((sim - sim[:, :1]) / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds).numpy()


def _runtime_key(backend: str) -> str:
    """ONNX Runtime's version where it may compute the features (any build: -gpu, ...)."""
    from zoo.onnx import runtime_version

    if backend.startswith("torch"):
        return ""
    try:
        return f"onnxruntime{runtime_version()}"
    except ImportError:
        return "no-onnxruntime"


def features(
    encoder: Encoder,
    files: list[Path],
    *,
    backend: str = "auto",
    cache: bool = True,
    calibration: list[Path] | None = None,
) -> np.ndarray:
    """Features of ``files``, cached under ``$ZOO_HOME/features`` by weights, preprocessing,
    backend and file list (paths, sizes, modification times), verified before every use."""
    from zoo.derived import cached_array, code_key, files_key
    from zoo.hub import cache_dir
    from zoo.images import PIPELINE_VERSION

    tag = "|".join(
        # int8 and fp32 features differ; so do the pixels of two versions of the image pipeline,
        # and the numbers of two versions of zoo, torch or ONNX Runtime computing them
        [encoder.fingerprint(), repr(encoder.preprocess), backend, f"pipeline{PIPELINE_VERSION}"]
        + [code_key(_runtime_key(backend))]
        + [str(Path(f).resolve()) for f in calibration or ()]
    )
    path = cache_dir() / "features" / f"{files_key(tag, files)}.npy"
    return cached_array(
        path,
        lambda: encoder.embed(files, backend=backend, progress=True, calibration=calibration),
        shape=(len(files), encoder.embed_dim),
        dtype=np.float32,
        enabled=cache,
    )


def knn_eval(
    model: str | Encoder,
    data: str | os.PathLike,
    *,
    train_split: str = "train",
    test_split: str | None = None,
    k: int = 20,
    temperature: float = 0.07,
    backend: str = "auto",
    limit_per_class: int = 0,
) -> dict:
    """Weighted-kNN top-1 (%) of ``model`` on an ImageFolder dataset with two splits
    (with ``limit_per_class``, the first that many images of each class of each split)."""
    import zoo

    encoder = model if isinstance(model, Encoder) else zoo.load(model)
    root = Path(data)
    if test_split is None:
        test_split = default_test_split(root)
    train_files, train_labels, classes = image_folder(root / train_split, limit_per_class=limit_per_class)
    test_files, test_labels, test_classes = image_folder(root / test_split, limit_per_class=limit_per_class)
    if test_classes != classes:
        raise ImageError(f"{root}: the {train_split} and {test_split} splits have different classes")
    # int8 activation ranges come from training images only, the same for both splits.
    calib = train_files if backend == "onnx-int8" else None
    train = features(encoder, train_files, backend=backend, calibration=calib)
    test = features(encoder, test_files, backend=backend, calibration=calib)
    pred = knn_predict(train, train_labels, test, k=k, temperature=temperature, num_classes=len(classes))
    used = min(k, len(train_files))  # knn_predict's: a train split smaller than k votes whole
    lowered = f" (k={k} asked; the train split has {len(train_files)} images)" if used != k else ""
    return {
        "model": encoder.name,
        "data": str(root),
        "protocol": f"weighted kNN, k={used}, T={temperature}, cosine; {train_split} -> {test_split}"
        + lowered,
        "k": used,
        "train_images": len(train_files),
        "test_images": len(test_files),
        "top1": round(100.0 * float((pred == test_labels).mean()), 2),
        "backend": backend,
    }


# ----------------------------------------------------------------------------------------
# Linear probe, clustering and retrieval on frozen (cached) features.

PROTOCOLS = ("knn", "linear", "cluster", "retrieval", "finetune")


def linear_probe(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    epochs: int = 100,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    batch_size: int = 512,
    seed: int = 0,
) -> dict:
    """Top-1 (%) of a linear classifier trained on frozen features.

    Features are standardised with the training split's mean and std (the BatchNorm
    without affine parameters that MoCo v3's and solo-learn's probes put before the
    linear layer); the layer is trained with AdamW and a cosine schedule on shuffled
    mini-batches from a fixed seed, so the number is reproducible.
    """
    gen = torch.Generator().manual_seed(seed)
    x_train = torch.from_numpy(np.ascontiguousarray(train)).float()
    x_test = torch.from_numpy(np.ascontiguousarray(test)).float()
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = torch.from_numpy(np.asarray(train_labels)).long()
    layer = torch.nn.Linear(x_train.shape[1], num_classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, -(-len(x_train) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=gen)
            for idx in order.split(batch_size):
                loss = torch.nn.functional.cross_entropy(layer(x_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        pred = layer(x_test).argmax(1).numpy()
    top1 = 100.0 * float((pred == np.asarray(test_labels)).mean())
    how = (
        f"linear probe on frozen standardised features, AdamW lr {lr} wd {weight_decay}, {epochs} epochs,"
        f" batch {batch_size}, cosine; {len(train)} train -> {len(test)} test images"
    )
    return {"top1": top1, "how": how}


def kmeans(x: np.ndarray, k: int, *, iterations: int = 100, restarts: int = 3, seed: int = 0) -> np.ndarray:
    """Cluster ids (N,) from k-means (k-means++ seeding, Lloyd iterations); of
    ``restarts`` runs the one with the lowest inertia is kept."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}], got {k}")
    data = torch.from_numpy(np.ascontiguousarray(x)).double()
    gen = torch.Generator().manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        centres = data[torch.randint(len(data), (1,), generator=gen)]
        for _ in range(1, k):  # k-means++: far points are likelier next centres
            d2 = torch.cdist(data, centres).min(1).values.pow(2)
            # Every point on a centre already (fewer distinct points than k): any point will do.
            weights = d2 if d2.sum() > 0 else torch.ones_like(d2)
            centres = torch.cat([centres, data[torch.multinomial(weights / weights.sum(), 1, generator=gen)]])
        for _ in range(iterations):
            assign = torch.cdist(data, centres).argmin(1)
            new = torch.zeros_like(centres).index_add_(0, assign, data)
            counts = torch.bincount(assign, minlength=k).unsqueeze(1)
            # An emptied cluster keeps its old centre rather than becoming NaN.
            new = torch.where(counts > 0, new / counts.clamp_min(1), centres)
            if torch.allclose(new, centres):
                break
            centres = new
        assign = torch.cdist(data, centres).argmin(1)
        inertia = float((data - centres[assign]).pow(2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    return best.numpy()


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    return table


def nmi(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalised mutual information, ``I(Y; C) / mean(H(Y), H(C))`` (arithmetic mean, as
    scikit-learn's default), in [0, 1]."""
    table = _contingency(labels, clusters).astype(np.float64)
    n = table.sum()
    pij = table / n
    pi, pj = pij.sum(1, keepdims=True), pij.sum(0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    hi = -float((pi[pi > 0] * np.log(pi[pi > 0])).sum())
    hj = -float((pj[pj > 0] * np.log(pj[pj > 0])).sum())
    if hi == 0 and hj == 0:
        return 1.0
    return mi / max((hi + hj) / 2, 1e-12)


def ari(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions, ~0 at chance."""
    table = _contingency(labels, clusters)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    total = pairs(np.array([table.sum()]))
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)


def hungarian(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost assignment for a (n, m) cost matrix with n <= m: ``cols[i]`` is row i's
    column (Kuhn-Munkres with potentials, O(n^2 m))."""
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n > m:
        raise ValueError(f"need rows <= columns, got {cost.shape}")
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j]: row (1-based) assigned to column j
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(candidates.argmin()) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.zeros(n, dtype=np.int64)
    for j in range(1, m + 1):
        if match[j]:
            cols[match[j] - 1] = j - 1
    return cols


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy (%) of clusters under the best one-to-one cluster -> class mapping
    (Hungarian algorithm on the contingency table)."""
    table = _contingency(clusters, labels)
    if table.shape[0] > table.shape[1]:
        table = table.T
    cols = hungarian(-table)
    return 100.0 * float(table[np.arange(len(cols)), cols].sum()) / len(labels)


def cluster_scores(features_: np.ndarray, labels: np.ndarray, *, num_classes: int, seed: int = 0) -> dict:
    """k-means (k = number of classes) on L2-normalised features, scored against the
    labels: NMI, ARI (both x100) and Hungarian accuracy (%)."""
    x = features_ / np.maximum(np.linalg.norm(features_, axis=1, keepdims=True), 1e-12)
    clusters = kmeans(x, num_classes, seed=seed)
    return {
        "nmi": 100.0 * nmi(labels, clusters),
        "ari": 100.0 * ari(labels, clusters),
        "accuracy": cluster_accuracy(labels, clusters),
        "how": f"k-means (k={num_classes}, k-means++, best of 3, seed {seed}) on L2-normalised features"
        f" of {len(labels)} images; NMI (arithmetic), ARI x100, Hungarian accuracy",
    }


def retrieval_map(
    gallery: np.ndarray, gallery_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray, *, k: int
) -> float:
    """mAP@k (%): each query ranks the gallery by cosine similarity; its AP@k is
    ``sum_{i<=k} P(i) rel(i) / min(k, R)`` with R the number of gallery items of its class
    (so a perfect top-k scores 1 even when R > k); the mean over queries."""
    g = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(gallery)).float(), dim=1)
    q = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(queries)).float(), dim=1)
    g_labels = torch.from_numpy(np.asarray(gallery_labels))
    q_labels = torch.from_numpy(np.asarray(query_labels))
    k = min(k, len(g))
    per_class = torch.bincount(g_labels, minlength=int(max(g_labels.max(), q_labels.max())) + 1)
    total = 0.0
    ranks = torch.arange(1, k + 1, dtype=torch.float64)
    for chunk, labels in zip(q.split(1024), q_labels.split(1024), strict=True):
        idx = (chunk @ g.T).topk(k, dim=1).indices
        rel = (g_labels[idx] == labels.unsqueeze(1)).double()
        precision = rel.cumsum(1) / ranks
        denom = per_class[labels].clamp(max=k).clamp_min(1).double()
        total += float(((precision * rel).sum(1) / denom).sum())
    return 100.0 * total / len(q)


def evaluate(
    model: str | Encoder,
    data: str | os.PathLike,
    *,
    protocol: str = "knn",
    train_split: str = "train",
    test_split: str | None = None,
    k: int = 20,
    temperature: float = 0.07,
    backend: str = "auto",
    finetune: dict | None = None,
    limit_per_class: int = 0,
) -> dict:
    """One protocol on an ImageFolder dataset with two splits, on cached features:

    * ``knn``: :func:`knn_eval` (``k``, ``temperature``);
    * ``linear``: :func:`linear_probe`, train split -> test split;
    * ``cluster``: :func:`cluster_scores` on the test split;
    * ``retrieval``: :func:`retrieval_map`, test images query the train split, mAP@``k``;
    * ``finetune``: :func:`zoo.finetuning.finetune_eval` (not on cached features: the
      semi-supervised protocol, ``finetune`` holds its keyword arguments, e.g.
      ``{"label_fraction": 0.01, "from_scratch": True}``).

    ``limit_per_class`` scores the frozen-feature protocols on the first that many images
    of each class of each split (what a recipe's ``data.limit_per_class`` trained and
    scored on).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "finetune":
        from zoo.finetuning import finetune_eval

        if limit_per_class:
            raise ValueError("limit_per_class applies to the frozen-feature protocols, not to finetune")
        return finetune_eval(model, data, train_split=train_split, test_split=test_split, **(finetune or {}))
    if protocol == "knn":
        return knn_eval(
            model,
            data,
            train_split=train_split,
            test_split=test_split,
            k=k,
            temperature=temperature,
            backend=backend,
            limit_per_class=limit_per_class,
        )
    import zoo

    encoder = model if isinstance(model, Encoder) else zoo.load(model)
    root = Path(data)
    if test_split is None:
        test_split = default_test_split(root)
    test_files, test_labels, classes = image_folder(root / test_split, limit_per_class=limit_per_class)
    calib = None
    result = {"model": encoder.name, "data": str(root), "backend": backend}
    if protocol == "cluster":
        test = features(encoder, test_files, backend=backend)
        scores = cluster_scores(test, test_labels, num_classes=len(classes))
        return {
            **result,
            "protocol": f"{scores.pop('how')}; {test_split}",
            "test_images": len(test_files),
            **{key: round(v, 2) for key, v in scores.items()},
        }
    train_files, train_labels, train_classes = image_folder(
        root / train_split, limit_per_class=limit_per_class
    )
    if train_classes != classes:
        raise ImageError(f"{root}: the {train_split} and {test_split} splits have different classes")
    if backend == "onnx-int8":
        calib = train_files
    train = features(encoder, train_files, backend=backend, calibration=calib)
    test = features(encoder, test_files, backend=backend, calibration=calib)
    result.update(train_images=len(train_files), test_images=len(test_files))
    if protocol == "linear":
        probe = linear_probe(train, train_labels, test, test_labels, num_classes=len(classes))
        return {
            **result,
            "protocol": f"{probe['how']}; {train_split} -> {test_split}",
            "top1": round(probe["top1"], 2),
        }
    value = retrieval_map(train, train_labels, test, test_labels, k=k)
    how = f"retrieval mAP@{k}, cosine; {test_split} images query {train_split}, relevant = same class"
    return {**result, "protocol": how, f"map@{k}": round(value, 2)}


# ----------------------------------------------------------------------------------------
# Recording a measured number in zoo/data/measured.csv (``zoo eval ... --record``).

#: Label fraction -> fine-tuning epochs of the table's rows. SimCLR fine-tunes 60 epochs on 1%
#: and 30 on 10% of ImageNet; on two shared CPU cores these budgets keep one encoder's sweep
#: under half an hour (CIFAR-10: 500 labels x 30 epochs, 5000 x 10; the README's "Few labels").
FINETUNE_EPOCHS = {0.01: 30, 0.1: 10}
#: The (k, temperature) pairs the table knows, and their protocol names.
KNN_PROTOCOLS = {(20, 0.07): "knn-k20", (200, 0.1): "knn-k200"}


def dataset_key(data: str | os.PathLike, test_split: str | None = None) -> str:
    """The evaluation set's key in the table: the dataset folder's name and the split scored
    (``../shared/data/cifar10`` -> ``cifar10-test``, ``.../imagenette`` -> ``imagenette-val``)."""
    root = Path(data).expanduser().resolve()
    if test_split is None:
        test_split = default_test_split(root)
    return f"{root.name.lower()}-{test_split.lower()}"


def _percent(fraction: float) -> str:
    pct = round(100 * fraction, 6)
    return f"{pct:g}".replace(".", "p")  # 0.01 -> 1, 0.005 -> 0p5 (the key allows no '%')


def protocol_key(
    protocol: str,
    *,
    k: int = 20,
    temperature: float = 0.07,
    label_fraction: float | None = None,
    labels_per_class: int | None = None,
    from_scratch: bool = False,
    epochs: int | None = None,
) -> str:
    """The table's protocol name of one ``zoo eval`` run, or a :class:`ZooError` saying why the
    run has no place in the table (only the leaderboard's protocols are recorded; a fine-tune
    on a label fraction of the table only with its :data:`FINETUNE_EPOCHS`)."""
    from zoo.errors import InvalidArgumentError

    if protocol == "knn":
        key = KNN_PROTOCOLS.get((k, round(temperature, 6)))
        if key is None:
            known = ", ".join(f"-k {kk} --temperature {t}" for kk, t in KNN_PROTOCOLS)
            raise InvalidArgumentError(
                f"--record keeps kNN only as {known}; got -k {k} --temperature {temperature}"
            )
        return key
    if protocol == "linear":
        return "linear"
    if protocol == "cluster":
        return "nmi"
    if protocol == "finetune":
        if labels_per_class is not None:
            key = f"finetune-{labels_per_class}perclass"
        else:
            fraction = 0.01 if label_fraction is None else label_fraction
            key = f"finetune-{_percent(fraction)}pct"
            budget = FINETUNE_EPOCHS.get(fraction)
            if budget is not None and epochs is not None and epochs != budget:
                # The row would replace the leaderboard's number with one of another budget.
                raise InvalidArgumentError(
                    f"--record keeps fine-tuning on {_percent(fraction)}% of the labels as --epochs"
                    f" {budget}, as every row of the table; got --epochs {epochs}"
                )
        # The baseline is a row of its own: it says what the pretraining is worth.
        return f"scratch-{key}" if from_scratch else key
    raise InvalidArgumentError(
        f"--record does not keep --protocol {protocol} (the table has no column for it)"
    )


def recorded_value(protocol: str, result: dict) -> float:
    """The number of ``result`` that the table keeps (NMI for clustering, else top-1)."""
    return float(result["nmi"] if protocol == "cluster" else result["top1"])


def runner_name(backend: str) -> str:
    """What computes features for ``backend`` here, in words ("ONNX Runtime, fp32"): ``auto``
    is ONNX Runtime where it is installed, else PyTorch."""
    if backend == "auto":
        from zoo.encoder import _has_onnxruntime

        backend = "onnx" if _has_onnxruntime() else "torch"
    return {"onnx": "ONNX Runtime, fp32", "torch": "PyTorch, fp32"}.get(backend, backend)


def frozen_how(result: dict, backend: str) -> str:
    """How a frozen-feature number was measured, for the table (``result`` from :func:`evaluate`)."""
    from zoo.registry import is_registered, model_info

    runner = runner_name(backend)
    counts = f"{result['train_images']:,} train / " if "train_images" in result else ""
    counts += f"{result['test_images']:,} test images; "
    if "images" in result["protocol"]:
        counts = ""  # the linear probe's and clustering's own text already gives them
    name = result.get("model", "")
    flip = is_registered(name) and model_info(name).preprocess.flip_average
    mirror = ", averaged over the image and its mirror image" if flip else ""
    return (
        f"{result['protocol']}; frozen features of the registry weights ({runner}){mirror};"
        f" {counts}{torch.get_num_threads()} threads"
    )


def shown_path(data: str | os.PathLike) -> str:
    """``data`` as a command in the table gives it: relative to the checkout's root when zoo
    runs from one and the data sits beside it (``../shared/data/cifar10``, as the README's
    commands), else its absolute path."""
    root = Path(__file__).resolve().parent.parent
    path = Path(data).expanduser().resolve()
    if (root / "pyproject.toml").is_file() and path.is_relative_to(root.parent):
        return os.path.relpath(path, root)
    return str(path)


def recordable_weights(name: str) -> str:
    """The weights key (first 16 hex of the sha256) of registry encoder ``name``, or an error
    when ``name`` is a folder, file or URL: the table holds registry encoders only."""
    import zoo
    from zoo.errors import InvalidArgumentError, UnknownModelError

    try:
        sha = zoo.model_info(name).weights.sha256
    except UnknownModelError:
        raise InvalidArgumentError(
            f"--record needs a registry name; {name!r} is not one (folders, files and URLs have no row in the"
            " measured table)"
        ) from None
    if not sha:
        raise InvalidArgumentError(f"--record needs pinned weights; {name} has no sha256 in the registry")
    return sha[:16]


def record_eval(
    name: str,
    data: str | os.PathLike,
    test_split: str | None,
    protocol: str,
    value: float,
    *,
    how: str,
    command: str,
) -> Path:
    """Upsert one measured number of registry encoder ``name`` into :func:`zoo.results.results_file`,
    with how it was measured, the command that reproduces it and the weights it was measured on."""
    from zoo.results import Result, record, results_file

    row = Result(
        model=name,
        dataset=dataset_key(data, test_split),
        protocol=protocol,
        value=round(float(value), 2),
        how=how,
        command=command,
        weights=recordable_weights(name),
    )
    return record([row], results_file())
