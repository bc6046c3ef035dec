"""Gallery indexes: the features of a folder of images, searchable by cosine similarity.

An index holds one encoder's L2-normalised features of every image below a folder, with
the images' paths, their labels (ImageFolder layout, ``root/<class>/<image>``: the class is
the first sub-folder) and the identity of what produced the features: model name, weights
fingerprint and preprocessing hash. Features of two encoders live in unrelated spaces, so an
index refuses to be extended or queried with another model (:class:`IndexMismatchError`).

    zoo index build --model NAME --images DIR --out gallery.npz

    index = zoo.index.build(encoder, "photos/", out="gallery.npz")
    index = zoo.index.load("gallery.npz")
    index.require(zoo.index.ModelIdentity.of(encoder))
    hits = index.neighbours(encoder.embed(["query.jpg"], normalize=True), k=5)

Search (see :func:`make_search`) is exact, by one matrix product, for galleries below
``APPROXIMATE_FROM`` images; larger ones use FAISS, when installed, with an inverted-file
index (IVF) that scans only the lists nearest to the query (``benchmarks/index.py`` measures
its latency and recall).

On disk an index is one ``.npz`` file, written atomically, with the arrays ``features``
(float32, N x D), ``paths`` (relative to the root), ``labels`` ("" for none), ``stamps``
(size and mtime of each file, so a rebuild re-embeds only what changed) and ``meta`` (JSON).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from zoo.errors import ImageError, InvalidArgumentError, ZooError
from zoo.folder import atomic_write_bytes
from zoo.images import PIPELINE_VERSION, find_images
from zoo.progress_bar import progress_bar

if TYPE_CHECKING:
    from zoo.encoder import Backend, Encoder
    from zoo.registry import Preprocess

__all__ = [
    "APPROXIMATE_FROM",
    "SEARCH_KINDS",
    "GalleryIndex",
    "IndexMismatchError",
    "ModelIdentity",
    "Neighbour",
    "Vote",
    "build",
    "has_faiss",
    "knn_vote",
    "load",
    "make_search",
    "scan_folder",
]

FORMAT = "zoo-gallery-index"
FORMAT_VERSION = 1

#: Gallery size from which ``search="auto"`` trades exactness for speed (FAISS IVF). Below
#: it an exact NumPy scan is fast enough: ~10 ms for one query in 10k x 1280 features on two
#: busy cores, where FAISS's flat index took ~24 ms (its OpenMP threads compete with the
#: server's; benchmarks/results/index.json).
APPROXIMATE_FROM = 200_000

SEARCH_KINDS = ("auto", "exact", "faiss-flat", "faiss-ivf")

# Images embedded per call during a build: small enough for a smooth progress bar and to
# isolate an unreadable file cheaply, large enough to keep the encoder busy.
_CHUNK = 256


class IndexMismatchError(ZooError):
    """An index used with features of another model (or another preprocessing)."""


# --------------------------------------------------------------------------------------------
# What produced the features
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelIdentity:
    """Everything that decides an encoder's features: comparable features need equal identities."""

    name: str
    fingerprint: str  # Encoder.fingerprint(): architecture + every weight
    preprocess_hash: str

    @classmethod
    def of(cls, encoder: Encoder) -> ModelIdentity:
        """The identity of ``encoder`` (hashes its weights: compute it once per encoder)."""
        return cls(encoder.name, encoder.fingerprint(), preprocess_hash(encoder.preprocess))

    def same_features_as(self, other: ModelIdentity) -> bool:
        # The name is only a label: a fine-tuned copy keeps it but not its features.
        return (self.fingerprint, self.preprocess_hash) == (other.fingerprint, other.preprocess_hash)


def preprocess_hash(preprocess: Preprocess) -> str:
    """A short stable hash of the resize/crop/normalisation an encoder's features depend on,
    and of the version of zoo's image pipeline (a change of the pipeline's arithmetic, such as
    resizing in float rather than uint8, changes features too: older indexes are then refused)."""
    text = json.dumps({**preprocess.to_dict(), "pipeline": PIPELINE_VERSION}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# --------------------------------------------------------------------------------------------
# Search structures
# --------------------------------------------------------------------------------------------


class Search(Protocol):
    """Top-k inner-product search over fixed vectors."""

    kind: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, ids)``, both (Q, k), each row sorted by decreasing similarity."""
        ...


class ExactSearch:
    """Brute force with NumPy: one (Q x D) @ (D x N) product, then a partial sort."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims_all = queries @ self.vectors.T
        if k < sims_all.shape[1]:
            top = np.argpartition(-sims_all, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(sims_all.shape[1]), (len(queries), sims_all.shape[1]))
        sims = np.take_along_axis(sims_all, top, axis=1)
        order = np.argsort(-sims, axis=1, kind="stable")
        return np.take_along_axis(sims, order, axis=1), np.take_along_axis(top, order, axis=1)


class FaissSearch:
    """A FAISS inner-product index: ``IndexFlatIP`` (exact) or ``IndexIVFFlat`` (approximate).

    IVF splits the vectors into ``nlist`` k-means cells and scans only the ``nprobe`` cells
    whose centroids are closest to the query. Defaults: ``nlist`` ~ sqrt(N), the usual
    balance of centroid and list scanning, and ``nprobe = nlist / 16``: at 1M x 512 clustered
    vectors, recall@10 0.999 at ~8 ms per query on two cores (``benchmarks/index.py``).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        approximate: bool = False,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_size: int | None = None,
        seed: int = 0,
    ):
        import faiss

        dim = vectors.shape[1]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not approximate:
            self.kind = "faiss-flat"
            self.index = faiss.IndexFlatIP(dim)
        else:
            self.kind = "faiss-ivf"
            nlist = nlist or max(1, min(4096, round(math.sqrt(len(vectors)))))
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            # k-means needs ~40 points per centroid; more only slows training.
            sample = min(len(vectors), train_size or 64 * nlist)
            rng = np.random.default_rng(seed)
            self.index.train(vectors[rng.choice(len(vectors), sample, replace=False)])
            self.index.nprobe = nprobe or max(1, nlist // 16)
        self.index.add(vectors)

    @property
    def nprobe(self) -> int | None:
        return getattr(self.index, "nprobe", None)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = value

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return sims, ids.astype(np.int64)


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def make_search(vectors: np.ndarray, kind: str = "auto", **options: Any) -> Search:
    """A search structure over ``vectors`` (N, D), float32, L2-normalised.

    ``kind``: ``"exact"`` (NumPy), ``"faiss-flat"`` (exact, FAISS), ``"faiss-ivf"``
    (approximate; ``options`` go to :class:`FaissSearch`), or ``"auto"``: exact NumPy below
    ``APPROXIMATE_FROM`` vectors, FAISS IVF from there when FAISS is installed.
    """
    if kind not in SEARCH_KINDS:
        raise ValueError(f"unknown search kind {kind!r}; choose one of {', '.join(SEARCH_KINDS)}")
    if kind == "auto":
        kind = "faiss-ivf" if len(vectors) >= APPROXIMATE_FROM and has_faiss() else "exact"
    if kind == "exact":
        return ExactSearch(vectors)
    if not has_faiss():
        raise ZooError(f"search kind {kind!r} needs FAISS: pip install faiss-cpu")
    return FaissSearch(vectors, approximate=kind == "faiss-ivf", **options)


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    """One search hit: a gallery image, its label (or ``None``) and its cosine similarity."""

    id: int
    path: str  # relative to the index root
    label: str | None
    similarity: float


@dataclass(frozen=True)
class Vote:
    """A kNN prediction: the label with the heaviest vote and its share of all votes."""

    label: str
    confidence: float


@dataclass
class GalleryIndex:
    """One encoder's features of a gallery of images; see the module docstring.

    Attributes:
        identity: the encoder that produced ``features``.
        root: folder the ``paths`` are relative to.
        paths: one relative POSIX path per image.
        labels: one class name (the first sub-folder) or ``None`` per image.
        features: (N, D) float32, L2-normalised rows.
        stamps: (N, 2) int64 file size and mtime in ns when embedded.
        skipped: images that could not be read when the index was built, with the reason.
    """

    identity: ModelIdentity
    root: Path
    paths: list[str]
    labels: list[str | None]
    features: np.ndarray
    stamps: np.ndarray
    skipped: list[str] = field(default_factory=list)
    search_kind: str = "auto"
    _search: Search | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def model(self) -> str:
        return self.identity.name

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def files(self) -> list[Path]:
        return [self.root / p for p in self.paths]

    @property
    def classes(self) -> list[str]:
        return sorted({label for label in self.labels if label is not None})

    def require(self, identity: ModelIdentity) -> None:
        """Raise :class:`IndexMismatchError` unless ``identity``'s features match this index's."""
        if not self.identity.same_features_as(identity):
            raise IndexMismatchError(
                f"this gallery index holds features of {self.identity.name!r}"
                f" (weights {self.identity.fingerprint[:12]}, preprocessing"
                f" {self.identity.preprocess_hash}), not of {identity.name!r} (weights"
                f" {identity.fingerprint[:12]}, preprocessing {identity.preprocess_hash});"
                " features of different models cannot be mixed: build an index for"
                f" {identity.name!r} (zoo index build --model ...)"
            )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine similarities and row ids of ``queries`` (Q, D) or (D,)."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise IndexMismatchError(
                f"query features have {queries.shape[1]} dimensions, the index {self.dim}"
                f" ({self.identity.name}); embed the queries with the index's model"
            )
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = queries / np.maximum(norms, 1e-12)
        return self._searcher().search(queries, min(k, len(self)))

    def neighbours(self, queries: np.ndarray, k: int) -> list[list[Neighbour]]:
        """:meth:`search` as :class:`Neighbour` lists, one per query, best first."""
        sims, ids = self.search(queries, k)
        return [
            [
                Neighbour(int(i), self.paths[i], self.labels[i], float(s))
                for s, i in zip(row_s, row_i, strict=True)
                if i >= 0  # FAISS pads with -1 when an IVF probe finds fewer than k
            ]
            for row_s, row_i in zip(sims, ids, strict=True)
        ]

    def _searcher(self) -> Search:
        # Built on first use (an IVF trains k-means) and shared by concurrent requests.
        with self._lock:
            if self._search is None:
                self._search = make_search(self.features, self.search_kind)
            return self._search

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to ``path`` atomically (one ``.npz`` file, whatever its suffix)."""
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.identity.name,
            "fingerprint": self.identity.fingerprint,
            "preprocess_hash": self.identity.preprocess_hash,
            "root": str(self.root),
            "skipped": self.skipped,
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.array(json.dumps(meta)),
            features=self.features,
            paths=np.array(self.paths, dtype=str),
            labels=np.array([label or "" for label in self.labels], dtype=str),
            stamps=self.stamps,
        )
        return atomic_write_bytes(path, buf.getvalue())


def load(path: str | os.PathLike, *, search: str = "auto") -> GalleryIndex:
    """Read an index written by :meth:`GalleryIndex.save` (``search``: see :func:`make_search`)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such gallery index (build one with `zoo index build`)")
    try:
        z = np.load(path, allow_pickle=False)
        # np.load gives an array for a .npy file (what `zoo embed` writes): no index's keys, and
        # not a context manager either.
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ZooError(
                f"{path}: this is a features array ({z.dtype} {z.shape}, as `zoo embed` writes), not"
                " a gallery index; build an index with `zoo index build --images DIR --out INDEX.npz`"
            )
        with z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in ("features", "paths", "labels", "stamps")}
    except (OSError, ValueError, KeyError, EOFError, RecursionError, zipfile.BadZipFile) as e:
        raise ZooError(f"{path}: not a zoo gallery index, or a damaged one ({e})") from None
    if not isinstance(meta, dict):
        raise ZooError(f"{path}: not a zoo gallery index, or a damaged one (its meta is not an object)")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ZooError(
            f"{path}: gallery index format {meta.get('format')!r} version"
            f" {meta.get('format_version')!r} is not supported (expected {FORMAT} {FORMAT_VERSION})"
        )
    _check_index(path, meta, arrays)
    return GalleryIndex(
        identity=ModelIdentity(meta["model"], meta["fingerprint"], meta["preprocess_hash"]),
        root=Path(meta["root"]),
        paths=arrays["paths"].tolist(),
        labels=[label or None for label in arrays["labels"].tolist()],
        features=arrays["features"].astype(np.float32, copy=False),
        stamps=arrays["stamps"].astype(np.int64, copy=False),
        skipped=list(meta.get("skipped", [])),
        search_kind=search,
    )


def _check_index(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """What a saved index must hold, so that a damaged or hand-made file fails here, by name,
    and not later as a wrong neighbour or an IndexError."""
    problems = [
        f"meta.{key} is not a string"
        for key in ("model", "fingerprint", "preprocess_hash", "root")
        if not isinstance(meta.get(key), str)
    ]
    if not isinstance(meta.get("skipped", []), list):
        problems.append("meta.skipped is not a list")
    features, stamps = arrays["features"], arrays["stamps"]
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        problems.append(f"features must be a 2-D float array, got {features.dtype} {features.shape}")
    elif not np.isfinite(features).all():
        problems.append("features hold NaN or infinity")
    if stamps.ndim != 2 or stamps.shape[1:] != (2,) or not np.issubdtype(stamps.dtype, np.integer):
        problems.append(f"stamps must be an integer (N, 2) array, got {stamps.dtype} {stamps.shape}")
    for name in ("paths", "labels"):
        a = arrays[name]
        if a.ndim != 1 or a.dtype.kind != "U":
            problems.append(f"{name} must be a 1-D string array, got {a.dtype} {a.shape}")
    if arrays["paths"].ndim == 1 and arrays["paths"].dtype.kind == "U":
        # Each path is joined to the root and served (the app's gallery): none may leave it.
        unsafe = [p for p in arrays["paths"].tolist() if not _inside_root(p)]
        if unsafe:
            more = f" (+{len(unsafe) - 3} more)" if len(unsafe) > 3 else ""
            problems.append(
                f"paths must be relative to the root, without '..': {', '.join(map(repr, unsafe[:3]))}{more}"
            )
    counts = {name: len(a) for name, a in arrays.items()}
    if len(set(counts.values())) > 1:
        problems.append("rows disagree: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    if problems:
        raise ZooError(
            f"{path}: damaged gallery index ({'; '.join(problems)}); build it again with `zoo index build`"
        )


def _inside_root(path: str) -> bool:
    """Whether ``path`` (as an index stores it, with '/') names a file below the index's root."""
    posix, native = PurePosixPath(path), Path(path)
    return bool(path) and not (
        posix.is_absolute() or native.is_absolute() or native.drive or ".." in {*posix.parts, *native.parts}
    )


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def scan_folder(root: str | os.PathLike) -> tuple[list[Path], list[str | None]]:
    """Every image below ``root`` and its label: the first sub-folder, ``None`` at the top level."""
    root = Path(root)
    files = find_images(root)
    labels = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else None for f in files]
    return files, labels


def build(
    encoder: Encoder,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    root: str | os.PathLike | None = None,
    labels: Sequence[str | None] | None = None,
    out: str | os.PathLike | None = None,
    identity: ModelIdentity | None = None,
    backend: Backend = "auto",
    batch_size: int = 64,
    progress: bool = True,
) -> GalleryIndex:
    """Embed a folder (or a list of files) into a :class:`GalleryIndex`, saved to ``out`` if given.

    Args:
        images: a folder (searched recursively; labels from sub-folders) or image files.
        root: what ``paths`` are relative to (default: the folder, or the files' common parent);
            every file must be below it.
        labels: one label per file when ``images`` is a list (default: none).
        out: where to save the index. An index already there is reused: files whose size and
            mtime did not change keep their features, so a rebuild embeds only new images.
        identity: ``ModelIdentity.of(encoder)``, if the caller already has it.
        backend, batch_size: passed to :meth:`Encoder.embed`.
        progress: show a progress bar.

    Unreadable images are left out and listed in ``skipped``; if none is readable, the
    :class:`ImageError` of the first is raised.

    Raises:
        IndexMismatchError: ``out`` holds an index of another model (delete it or pick
            another path: features of two models cannot share an index).
        InvalidArgumentError: a file is not below ``root``.
    """
    if isinstance(images, (str, os.PathLike)):
        root = Path(root or images)
        files, found_labels = scan_folder(images)
        labels = labels if labels is not None else found_labels
    else:
        files = [Path(f) for f in images]
        if not files:
            raise ImageError("no images to index")
        root = Path(root or os.path.commonpath([f.parent for f in files]))
        labels = list(labels) if labels is not None else [None] * len(files)
    if len(labels) != len(files):
        raise ValueError(f"{len(labels)} labels for {len(files)} images")
    # absolute(), not resolve(): a gallery of symlinks keeps its own layout and labels.
    root = Path(os.path.abspath(root))
    files = [Path(os.path.abspath(f)) for f in files]
    outside = [f for f in files if not f.is_relative_to(root)]
    if outside:
        # The index stores paths relative to its root, and the app serves root/path: a file
        # elsewhere would need an absolute path, which a loaded index refuses.
        raise InvalidArgumentError(
            f"{outside[0]} is not below the root {root} ({len(outside)} of {len(files)} files are not);"
            " pass a root= that holds every image, or leave it out (the files' common folder)"
        )
    identity = identity or ModelIdentity.of(encoder)
    reuse = _reusable_features(out, identity)

    rel_paths = [f.relative_to(root).as_posix() for f in files]
    stamps = np.array([_stamp(f) for f in files], dtype=np.int64).reshape(-1, 2)
    feats = np.zeros((len(files), encoder.embed_dim), dtype=np.float32)
    ok = np.zeros(len(files), dtype=bool)
    todo = []
    for i, (rel, stamp) in enumerate(zip(rel_paths, stamps, strict=True)):
        hit = reuse.get((rel, *stamp.tolist()))
        if hit is not None:
            feats[i], ok[i] = hit, True
        else:
            todo.append(i)

    # calibration=files: with onnx-int8, every chunk then runs the same quantised model.
    embed_kwargs = {"backend": backend, "batch_size": batch_size, "normalize": True, "calibration": files}
    skipped: list[str] = []
    first_error: ImageError | None = None
    with progress_bar(
        len(files), f"index {identity.name}", "img", enabled=progress, initial=len(files) - len(todo)
    ) as bar:
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            for i, result in zip(
                chunk, _embed_each(encoder, [files[i] for i in chunk], embed_kwargs), strict=True
            ):
                if isinstance(result, ImageError):
                    # The error names the absolute path; the index lists paths relative to its root.
                    skipped.append(f"{rel_paths[i]}: {str(result).removeprefix(f'{files[i]}: ')}")
                    first_error = first_error or result
                else:
                    feats[i], ok[i] = result, True
            bar.update(len(chunk))
    if not ok.any():
        raise first_error or ImageError("no images to index")

    keep = np.flatnonzero(ok)
    index = GalleryIndex(
        identity=identity,
        root=root,
        paths=[rel_paths[i] for i in keep],
        labels=[labels[i] for i in keep],
        features=np.ascontiguousarray(feats[keep]),
        stamps=stamps[keep],
        skipped=skipped,
    )
    if out is not None:
        index.save(out)
    return index


def _reusable_features(
    out: str | os.PathLike | None, identity: ModelIdentity
) -> dict[tuple[str, int, int], np.ndarray]:
    """``{(path, size, mtime): features}`` of the index at ``out``, checked to be of this model."""
    if out is None or not Path(out).is_file():
        return {}
    previous = load(out)
    try:
        previous.require(identity)
    except IndexMismatchError as e:
        raise IndexMismatchError(f"{out}: refusing to overwrite: {e}") from None
    return {
        (p, int(s[0]), int(s[1])): f
        for p, s, f in zip(previous.paths, previous.stamps, previous.features, strict=True)
    }


def _embed_each(
    encoder: Encoder, files: list[Path], embed_kwargs: dict[str, Any]
) -> list[np.ndarray | ImageError]:
    """The features of each file, or the ImageError it raised: all files are embedded at once,
    and one by one only when one of them is unreadable."""
    try:
        return list(encoder.embed(files, **embed_kwargs))
    except ImageError:
        pass
    results: list[np.ndarray | ImageError] = []
    for f in files:
        try:
            results.append(encoder.embed([f], **embed_kwargs)[0])
        except ImageError as e:
            results.append(e)
    return results


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)  # reported as unreadable when embedded
    return (st.st_size, st.st_mtime_ns)


# --------------------------------------------------------------------------------------------
# Using neighbours
# --------------------------------------------------------------------------------------------


def knn_vote(neighbours: Sequence[Neighbour], temperature: float = 0.07) -> Vote | None:
    """Weighted kNN vote of the labelled ``neighbours``: each votes ``exp(similarity / T)``
    for its label, as in :func:`zoo.evaluate.knn_predict`; ``None`` when none has a label."""
    weights: dict[str, float] = {}
    for n in neighbours:
        if n.label is not None:
            # Shifted by the best similarity so exp() cannot overflow; the shares are unchanged.
            weights[n.label] = weights.get(n.label, 0.0) + math.exp(
                (n.similarity - neighbours[0].similarity) / temperature
            )
    if not weights:
        return None
    label = max(weights, key=weights.__getitem__)
    return Vote(label, weights[label] / sum(weights.values()))
