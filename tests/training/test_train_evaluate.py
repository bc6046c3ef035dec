"""Evaluation protocols: linear probe, k-means with NMI / ARI / Hungarian accuracy and
retrieval mAP@k against direct computations, and `zoo eval --protocol` on real images."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.evaluate import (
    ari,
    cluster_accuracy,
    cluster_scores,
    evaluate,
    hungarian,
    kmeans,
    knn_predict,
    linear_probe,
    nmi,
    retrieval_map,
)


def _blobs(
    n_per: int, k: int, dim: int = 8, spread: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    labels = np.repeat(np.arange(k), n_per)
    return (centres[labels] + rng.normal(size=(len(labels), dim)) * spread).astype(np.float32), labels


def test_nmi_and_ari_against_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 4, 60), rng.integers(0, 5, 60)
        assert nmi(a, b) == pytest.approx(metrics.normalized_mutual_info_score(a, b), abs=1e-9)
        assert ari(a, b) == pytest.approx(metrics.adjusted_rand_score(a, b), abs=1e-9)
    a = rng.integers(0, 4, 60)
    assert nmi(a, (a + 1) % 4) == pytest.approx(1.0) and ari(a, (a + 1) % 4) == pytest.approx(1.0)


def test_hungarian_finds_the_minimum_cost_assignment() -> None:
    rng = np.random.default_rng(1)
    for shape in [(4, 4), (3, 5), (5, 5)]:
        cost = rng.random(shape)
        cols = hungarian(cost)
        best = min(
            sum(cost[i, c] for i, c in enumerate(perm))
            for perm in itertools.permutations(range(shape[1]), shape[0])
        )
        assert len(set(cols)) == shape[0]
        assert cost[np.arange(shape[0]), cols].sum() == pytest.approx(best)


def test_cluster_accuracy_is_invariant_to_cluster_names() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    assert cluster_accuracy(labels, np.array([2, 2, 0, 0, 1, 1, 1])) == pytest.approx(100.0)
    assert cluster_accuracy(labels, np.array([2, 2, 0, 0, 1, 1, 0])) == pytest.approx(100 * 6 / 7)


def test_kmeans_recovers_separated_clusters() -> None:
    x, labels = _blobs(30, 4)
    assert nmi(labels, kmeans(x, 4)) == pytest.approx(1.0)
    scores = cluster_scores(x, labels, num_classes=4)
    assert scores["nmi"] == pytest.approx(100.0) and scores["accuracy"] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        kmeans(x, 0)


def test_kmeans_of_fewer_distinct_points_than_k_still_clusters() -> None:
    # A dead encoder's features (all equal) at the end of a long run: k-means++ had no far point
    # left to draw and divided 0 by 0.
    assert kmeans(np.zeros((10, 4)), 3).tolist() == [0] * 10
    two = np.repeat(np.eye(4)[:2], 5, axis=0)  # two distinct points, k=3
    assert nmi(np.repeat([0, 1], 5), kmeans(two, 3)) == pytest.approx(1.0)


def test_linear_probe_separates_linearly_separable_classes() -> None:
    x, labels = _blobs(40, 3, spread=0.5)
    res = linear_probe(x[::2], labels[::2], x[1::2], labels[1::2], num_classes=3, epochs=30)
    assert res["top1"] == pytest.approx(100.0) and "linear probe" in res["how"]


def test_knn_votes_against_a_direct_loop_even_at_tiny_temperatures() -> None:
    """exp(s/T) summed per class over the k nearest, as the MoCo demo's knn_predict; at
    T=0.005 exp(1/T) overflows float32, which once made every tied-at-inf class win by index."""
    rng = np.random.default_rng(3)
    bank, bank_labels = rng.normal(size=(60, 6)).astype(np.float32), rng.integers(0, 4, 60)
    queries = rng.normal(size=(25, 6)).astype(np.float32)
    bn = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for k, temperature in [(7, 0.1), (7, 0.005), (60, 0.07)]:
        expected = []
        for q in qn.astype(np.float64):
            sims = bn.astype(np.float64) @ q
            nearest = np.argsort(-sims)[:k]
            votes = np.zeros(4)
            for j in nearest:  # shifted by the largest similarity, which leaves the argmax alone
                votes[bank_labels[j]] += np.exp((sims[j] - sims[nearest[0]]) / temperature)
            expected.append(int(votes.argmax()))
        got = knn_predict(bank, bank_labels, queries, k=k, temperature=temperature, num_classes=4)
        assert got.tolist() == expected, (k, temperature)


def test_retrieval_map_against_a_direct_loop() -> None:
    rng = np.random.default_rng(2)
    gallery, g_labels = rng.normal(size=(30, 5)), rng.integers(0, 3, 30)
    queries, q_labels = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    k = 6
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    aps = []
    for q, y in zip(qn, q_labels, strict=True):
        order = np.argsort(-(gn @ q))[:k]
        hits, ap = 0, 0.0
        for rank, j in enumerate(order, start=1):
            if g_labels[j] == y:
                hits += 1
                ap += hits / rank
        aps.append(ap / min(k, int((g_labels == y).sum())))
    expected = 100 * float(np.mean(aps))
    assert retrieval_map(gallery, g_labels, queries, q_labels, k=k) == pytest.approx(expected, rel=1e-5)
    assert retrieval_map(gallery, g_labels, gallery, g_labels, k=1) == pytest.approx(100.0)


def test_every_protocol_runs_on_real_images(tiny_dataset: Path) -> None:
    encoder = zoo.create_model("resnet18_cifar_quarter")
    knn = evaluate(encoder, tiny_dataset, protocol="knn", k=5, backend="torch")
    assert 0 <= knn["top1"] <= 100 and knn["test_images"] == 18
    linear = evaluate(encoder, tiny_dataset, protocol="linear", backend="torch")
    assert 0 <= linear["top1"] <= 100 and "linear probe" in linear["protocol"]
    cluster = evaluate(encoder, tiny_dataset, protocol="cluster", backend="torch")
    assert {"nmi", "ari", "accuracy"} <= set(cluster) and cluster["accuracy"] >= 100 / 3
    retrieval = evaluate(encoder, tiny_dataset, protocol="retrieval", k=5, backend="torch")
    assert 0 < retrieval["map@5"] <= 100
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(encoder, tiny_dataset, protocol="probe")


def test_zoo_eval_protocol_on_the_command_line(tiny_dataset: Path, tmp_path: Path) -> None:
    folder = zoo.create_model("resnet18_cifar_quarter").save(tmp_path / "enc")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.cli",
            "eval",
            str(folder),
            "--data",
            str(tiny_dataset),
            "--protocol",
            "cluster",
            "--backend",
            "torch",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["test_images"] == 18 and "k-means (k=3" in result["protocol"]
