"""Two gloo processes give the loss and gradients of one process over the same global batch:
SimCLR's negatives (and MoCo v3's keys, Barlow Twins' and VICReg's statistics) are
gathered across ranks *with* gradients, and DDP averages the rest; SwAV's Sinkhorn over the
global batch and its queue counts the queue once; SimCLR v2's memory joins the gathered
negatives; IIC's joint distribution is the global batch's, and DeepCluster's balanced loss is
normalised by the global batch's weight; SupCon's candidates and positives are every rank's
views and labels."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _ddp_worker import CASES

WORKER = Path(__file__).with_name("_ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    port = str(_free_port())
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(out)], env={**base, "WORLD_SIZE": "1"})]
    for rank in range(2):
        env = {**base, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out)], env=env))
    for p in procs:
        assert p.wait(timeout=600) == 0  # 3 processes that import torch: slow on a busy 2-core machine
    return out


@pytest.mark.parametrize("case", CASES)
def test_two_processes_equal_one_at_the_same_global_batch(results: Path, case: str) -> None:
    one = torch.load(results / f"{case}-1.pt", weights_only=True)
    two = torch.load(results / f"{case}-2.pt", weights_only=True)
    torch.testing.assert_close(two["loss"], one["loss"], rtol=1e-5, atol=1e-6)
    assert one["grads"].keys() == two["grads"].keys() and one["grads"]
    for name, grad in one["grads"].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_moco_shuffle_bn_round_trips_and_queues_stay_identical_across_ranks(results: Path) -> None:
    ranks = [torch.load(results / f"moco-2-rank{r}.pt", weights_only=True) for r in range(2)]
    for r in ranks:
        torch.testing.assert_close(r["unshuffled"], r["local"])
    # The key encoder's batch on each rank mixes samples of both ranks.
    both = torch.cat([r["shuffled"] for r in ranks]).flatten().sort().values
    torch.testing.assert_close(both, torch.arange(16.0))
    assert any(not set(r["shuffled"].flatten().tolist()) <= set(r["local"].flatten().tolist()) for r in ranks)
    # Every rank enqueued the keys of both ranks' two views: identical queues, pointer 2 x 16.
    torch.testing.assert_close(ranks[0]["queue"], ranks[1]["queue"])
    assert int(ranks[0]["pointer"]) == 32


def test_ranks_wait_long_enough_for_rank_0s_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 0 evaluates and exports alone while the others wait in a barrier: the process
    # group must outlast that (NCCL's default is 10 minutes), and the setting must be sane.
    import torch.distributed as dist
    from zoo.training import distributed as D

    seen = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("ZOO_DIST_TIMEOUT_MINUTES", raising=False)
    assert D.init_from_env("gloo") and seen["timeout"].total_seconds() == 180 * 60
    monkeypatch.setenv("ZOO_DIST_TIMEOUT_MINUTES", "600")
    assert D.init_from_env("gloo") and seen["timeout"].total_seconds() == 600 * 60
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("ZOO_DIST_TIMEOUT_MINUTES", bad)
        with pytest.raises(ValueError, match="ZOO_DIST_TIMEOUT_MINUTES must be a positive number"):
            D.init_from_env("gloo")
