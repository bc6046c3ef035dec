"""Two gloo processes give the loss and gradients of one process over the same global batch:
SimCLR's negatives (and MoCo v3's keys, Barlow Twins' and VICReg's statistics) are
gathered across ranks *with* gradients, and DDP averages the rest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("_ddp_worker.py")
CASES = ("simclr", "barlow_twins", "vicreg", "moco_v3_infonce")


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
        assert p.wait(timeout=180) == 0
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
