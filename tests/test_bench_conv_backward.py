"""benchmarks/conv_backward.py: every stage of the network timed three ways, the fp32 weight
gradient equal to the bf16 one up to bf16 rounding, and the result file naming the machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("conv_backward", ROOT / "benchmarks" / "conv_backward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_stage_is_timed_and_the_split_gradient_matches(tmp_path: Path) -> None:
    bench = _load_benchmark()
    threads = torch.get_num_threads()
    try:
        result = bench.main(
            ["--width", "half", "--batch", "4", "--repeats", "1", "--out", str(tmp_path / "r.json")]
        )
    finally:
        torch.set_num_threads(threads)
    assert list(result["stages"]) == ["32 ch, 32 px", "64 ch, 16 px", "128 ch, 8 px", "256 ch, 4 px"]
    for times in result["stages"].values():
        assert all(times[k] > 0 for k in ("forward", "bf16", "split", "fp32"))
        assert times["split_over_bf16"] == pytest.approx(times["split"] / times["bf16"], abs=1e-3)
        # Same gradient, summed in fp32 instead of bf16: rounding apart, nothing differs.
        assert 0 < times["weight_grad_rel_diff"] < 0.02
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["machine"]["cpu"] and written["machine"]["onednn"] != "unknown"
