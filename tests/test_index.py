"""Gallery indexes (zoo.index) and clustering (zoo.cluster) on real images from ../shared/data."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import zoo_cmd

import zoo
import zoo.cluster
import zoo.index
from zoo.index import GalleryIndex, IndexMismatchError, ModelIdentity, Neighbour


def image_folder(src: Path, dst: Path, classes: int, per_class: int) -> Path:
    """A small ImageFolder split of symlinks to the first images of the first classes of ``src``."""
    for d in sorted(p for p in src.iterdir() if p.is_dir())[:classes]:
        (dst / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir())[:per_class]:
            (dst / d.name / f.name).symlink_to(f)
    return dst


@pytest.fixture(scope="module")
def identity(default_encoder) -> ModelIdentity:
    return ModelIdentity.of(default_encoder)


@pytest.mark.parametrize("split", ["imagenette/val", "cifar10/test"])
def test_build_search_save_load(
    default_encoder, identity: ModelIdentity, data_root: Path, tmp_path: Path, split: str
) -> None:
    folder = image_folder(data_root / split, tmp_path / "gallery", classes=4, per_class=5)
    index = zoo.index.build(default_encoder, folder, out=tmp_path / "g.npz", progress=False)
    assert len(index) == 20 and index.dim == default_encoder.embed_dim
    assert index.classes == sorted(d.name for d in folder.iterdir())
    assert index.paths[0] == f"{index.classes[0]}/{sorted((folder / index.classes[0]).iterdir())[0].name}"
    assert np.allclose(np.linalg.norm(index.features, axis=1), 1, atol=1e-5)

    # Each gallery image is its own nearest neighbour; results are sorted.
    sims, ids = index.search(index.features, k=3)
    assert (ids[:, 0] == np.arange(20)).all() and np.allclose(sims[:, 0], 1, atol=1e-4)
    assert (np.diff(sims, axis=1) <= 1e-6).all()

    loaded = zoo.index.load(tmp_path / "g.npz")
    assert loaded.identity == identity == index.identity
    assert loaded.paths == index.paths and loaded.labels == index.labels
    assert np.array_equal(loaded.features, index.features)
    assert loaded.files[0].is_file() and loaded.root == folder


def test_labels_and_unlabelled_images(default_encoder, data_root: Path, tmp_path: Path) -> None:
    folder = image_folder(data_root / "imagenette/val", tmp_path / "g", classes=2, per_class=2)
    top = sorted((data_root / "imagenette/val/n03445777").iterdir())[0]
    (folder / "loose.jpg").symlink_to(top)  # not in a class folder: no label
    files, labels = zoo.index.scan_folder(folder)
    assert labels == [None] + ["n01440764"] * 2 + ["n02102040"] * 2  # sorted by path
    assert files[0].name == "loose.jpg"
    index = zoo.index.build(default_encoder, folder, progress=False)
    assert index.labels[0] is None and index.classes == ["n01440764", "n02102040"]


def test_rebuild_embeds_only_new_images(
    default_encoder, data_root: Path, tmp_path: Path, monkeypatch
) -> None:
    folder = image_folder(data_root / "imagenette/val", tmp_path / "g", classes=2, per_class=3)
    out = tmp_path / "g.npz"
    first = zoo.index.build(default_encoder, folder, out=out, progress=False)
    extra = sorted((data_root / "imagenette/val/n01440764").iterdir())[10]
    (folder / "n01440764" / extra.name).symlink_to(extra)

    embedded: list[int] = []
    real_embed = default_encoder.embed
    monkeypatch.setattr(
        default_encoder, "embed", lambda ims, **kw: embedded.append(len(ims)) or real_embed(ims, **kw)
    )
    second = zoo.index.build(default_encoder, folder, out=out, progress=False)
    assert embedded == [1] and len(second) == len(first) + 1
    kept = [second.paths.index(p) for p in first.paths]
    assert np.array_equal(second.features[kept], first.features)


def test_refuses_to_mix_models(default_encoder, data_root: Path, tmp_path: Path) -> None:
    folder = image_folder(data_root / "imagenette/val", tmp_path / "g", classes=2, per_class=2)
    out = tmp_path / "g.npz"
    zoo.index.build(default_encoder, folder, out=out, progress=False)
    # Same name, other weights (a fine-tuned copy): its features are not comparable.
    tuned = copy.deepcopy(default_encoder)
    with torch.no_grad():
        next(tuned.parameters()).add_(0.01)
    with pytest.raises(IndexMismatchError, match=r"refusing to overwrite.*cannot be mixed"):
        zoo.index.build(tuned, folder, out=out, progress=False)
    index = zoo.index.load(out)
    with pytest.raises(IndexMismatchError, match="cannot be mixed"):
        index.require(ModelIdentity.of(tuned))
    with pytest.raises(IndexMismatchError, match="dimensions"):
        index.search(np.ones((1, 7), np.float32), k=1)


def test_unreadable_images_are_skipped(default_encoder, data_root: Path, tmp_path: Path) -> None:
    folder = image_folder(data_root / "cifar10/test", tmp_path / "g", classes=1, per_class=3)
    (folder / "airplane" / "broken.jpg").write_bytes(b"not a jpeg")
    index = zoo.index.build(default_encoder, folder, progress=False)
    assert len(index) == 3 and "broken.jpg" not in index.paths
    assert index.skipped[0].startswith("airplane/broken.jpg: ")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "only.png").write_bytes(b"")
    with pytest.raises(zoo.ImageError, match=r"only\.png"):
        zoo.index.build(default_encoder, tmp_path / "bad", progress=False)


def test_damaged_index_file(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(zoo.ZooError, match="not a zoo gallery index"):
        zoo.index.load(tmp_path / "junk.npz")
    with pytest.raises(zoo.ZooError, match="no such gallery index"):
        zoo.index.load(tmp_path / "missing.npz")


def test_a_features_array_is_not_taken_for_an_index(tmp_path: Path) -> None:
    """`zoo embed` writes OUT.npy; passing it where an index goes says what to do instead."""
    np.save(tmp_path / "feats.npy", np.zeros((4, 8), np.float32))
    with pytest.raises(zoo.ZooError, match=r"features array \(float32 \(4, 8\).*zoo index build") as e:
        zoo.index.load(tmp_path / "feats.npy")
    assert "feats.npy" in str(e.value)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))  # a pickle inside
    with pytest.raises(zoo.ZooError, match="not a zoo gallery index"):
        zoo.index.load(tmp_path / "objects.npy")


def test_files_outside_the_root_are_refused_before_embedding(tmp_path: Path) -> None:
    class NoEncoder:  # build must fail before it embeds (or even fingerprints) anything
        pass

    (tmp_path / "gallery").mkdir()
    with pytest.raises(zoo.InvalidArgumentError, match=r"elsewhere\.png is not below the root"):
        zoo.index.build(
            NoEncoder(),  # type: ignore[arg-type]
            [tmp_path / "gallery" / "a.png", tmp_path / "elsewhere.png"],
            root=tmp_path / "gallery",
            progress=False,
        )


def _rewritten(src: Path, dst: Path, **changes) -> Path:
    """A copy of the saved index ``src`` with some of its entries replaced."""
    import json

    with np.load(src, allow_pickle=False) as z:
        entries = {name: z[name] for name in z.files}
    meta = json.loads(str(entries["meta"]))
    for key, value in changes.pop("meta", {}).items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    entries["meta"] = np.array(json.dumps(changes.pop("meta_json", meta)))
    entries.update(changes)
    np.savez(dst, **entries)
    return dst


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ({"meta_json": ["not", "an", "object"]}, "its meta is not an object"),
        ({"meta": {"model": None}}, "meta.model is not a string"),
        ({"meta": {"root": 3}}, "meta.root is not a string"),
        ({"paths": np.array(["a.png", "b.png"])}, "rows disagree: features 3, paths 2"),
        ({"features": np.zeros((3,), np.float32)}, "features must be a 2-D float array"),
        ({"features": np.full((3, 4), np.nan, np.float32)}, "features hold NaN"),
        ({"stamps": np.zeros((3, 3), np.int64)}, "stamps must be an integer (N, 2) array"),
        ({"labels": np.zeros(3)}, "labels must be a 1-D string array"),
        # The app serves root/path: a path that leaves the root would serve any file.
        ({"paths": np.array(["a.png", "/etc/passwd", "c.png"])}, "paths must be relative to the root"),
        ({"paths": np.array(["a.png", "../../etc/passwd", "c.png"])}, "'../../etc/passwd'"),
        ({"paths": np.array(["a.png", "x/../../y.png", ""])}, "without '..'"),
    ],
)
def test_a_damaged_index_names_what_is_wrong(tmp_path: Path, damage: dict, named: str) -> None:
    identity = ModelIdentity("m", "f" * 16, "p" * 16)
    index = GalleryIndex(
        identity=identity,
        root=tmp_path,
        paths=["a.png", "b.png", "c.png"],
        labels=["x", None, "y"],
        features=np.eye(3, 4, dtype=np.float32),
        stamps=np.zeros((3, 2), np.int64),
    )
    index.save(tmp_path / "ok.npz")
    assert zoo.index.load(tmp_path / "ok.npz").paths == index.paths
    bad = _rewritten(tmp_path / "ok.npz", tmp_path / "bad.npz", **damage)
    with pytest.raises(zoo.ZooError) as e:
        zoo.index.load(bad)
    assert named in str(e.value) and "bad.npz" in str(e.value)


def clustered(n: int, dim: int, centres: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres, like embeddings of a few hundred kinds of thing."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_kinds_agree() -> None:
    pytest.importorskip("faiss")
    vectors, queries = clustered(20_000, 64, 200), clustered(50, 64, 200, seed=1)
    exact = zoo.index.make_search(vectors, "exact")
    flat = zoo.index.make_search(vectors, "faiss-flat")
    ivf = zoo.index.make_search(vectors, "faiss-ivf")
    assert zoo.index.make_search(vectors, "auto").kind == "exact"  # below APPROXIMATE_FROM
    (s_exact, i_exact), (s_flat, i_flat) = exact.search(queries, 10), flat.search(queries, 10)
    assert np.allclose(s_exact, s_flat, atol=1e-5) and (i_exact[:, 0] == i_flat[:, 0]).all()

    def recall() -> float:
        found = ivf.search(queries, 10)[1]
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_exact, found, strict=True)]))

    assert ivf.kind == "faiss-ivf" and ivf.nprobe == ivf.index.nlist // 16
    ivf.nprobe = ivf.index.nlist  # probing every list is an exact search
    assert recall() == 1.0
    ivf.nprobe = ivf.index.nlist // 4
    assert recall() >= 0.9


def test_knn_vote() -> None:
    # Weights exp(similarity / 0.07): two close "dog"s outvote one slightly closer "cat"...
    hits = [Neighbour(0, "a", "cat", 0.90), Neighbour(1, "b", "dog", 0.89), Neighbour(2, "c", "dog", 0.88)]
    vote = zoo.index.knn_vote(hits)
    assert vote is not None and vote.label == "dog" and 0.5 < vote.confidence < 0.7
    # ... but not a much closer one.
    far = [Neighbour(0, "a", "cat", 0.95), Neighbour(1, "b", "dog", 0.8), Neighbour(2, "c", "dog", 0.8)]
    assert zoo.index.knn_vote(far).label == "cat"
    assert zoo.index.knn_vote([Neighbour(0, "a", None, 0.9)]) is None


def test_cluster_real_features(default_encoder, data_root: Path) -> None:
    wnids = ["n01440764", "n03028079", "n03445777"]  # tench, church, golf ball
    files = [f for w in wnids for f in sorted((data_root / "imagenette/val" / w).iterdir())[:8]]
    labels = [w for w in wnids for _ in range(8)]
    features = default_encoder.embed(files)
    result = zoo.cluster.cluster(features)
    assert result.chosen_by == "silhouette" and result.k == 3
    assert set(result.silhouette_by_k) == set(range(2, 11))
    assert zoo.cluster.agreement(labels, result.assignments)["nmi"] > 0.8
    sizes = [len(m) for m in result.members()]
    assert sizes == sorted(sizes, reverse=True)  # cluster 1 is the largest
    assert zoo.cluster.cluster(features, k=30).k == len(files)  # capped at the images
    random = np.random.default_rng(0).integers(0, 3, len(files))
    assert zoo.cluster.agreement(labels, random)["ari"] < 0.2
    for method in ("pca", "tsne"):
        assert zoo.cluster.project_2d(features, method).shape == (len(files), 2)


def test_cli_index_build_and_info(data_root: Path, tmp_path: Path) -> None:
    folder = image_folder(data_root / "cifar10/test", tmp_path / "g", classes=2, per_class=3)
    out = tmp_path / "cifar.npz"
    args = ["--images", str(folder), "--out", str(out)]
    assert "6 images in 2 classes" in zoo_cmd("index", "build", *args).stdout
    assert '"images": 6' in zoo_cmd("index", "info", str(out)).stdout
    index: GalleryIndex = zoo.index.load(out)
    assert index.model == zoo.DEFAULT_MODEL and index.classes == ["airplane", "automobile"]


@pytest.mark.slow
@pytest.mark.parametrize("split", ["imagenette/val", "cifar10/test"])
def test_full_gallery(default_encoder, data_root: Path, tmp_path: Path, split: str) -> None:
    """The whole split as a gallery: every image indexed, leave-one-out kNN well above chance."""
    index = zoo.index.build(default_encoder, data_root / split, out=tmp_path / "full.npz")
    assert len(index) == sum(1 for _ in (data_root / split).rglob("*.*")) and not index.skipped
    hits = zoo.index.load(tmp_path / "full.npz").neighbours(index.features, k=21)
    votes = [zoo.index.knn_vote(h[1:]) for h in hits]  # h[0] is the image itself
    accuracy = np.mean([v.label == label for v, label in zip(votes, index.labels, strict=True)])
    assert accuracy > 0.5  # chance is 0.1


def test_preprocess_hash_changes_with_the_image_pipeline_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """An index built before a change of zoo's pixel arithmetic holds other features: its
    identity must differ, so loading it for the same model is refused rather than mixed."""
    import zoo.index
    from zoo.registry import Preprocess

    p = Preprocess(input_size=32, resize_size=32)
    before = zoo.index.preprocess_hash(p)
    monkeypatch.setattr(zoo.index, "PIPELINE_VERSION", zoo.index.PIPELINE_VERSION - 1)
    assert zoo.index.preprocess_hash(p) != before
