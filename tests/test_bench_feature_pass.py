"""benchmarks/feature_pass.py: with zoo.memory's thresholds a frozen-feature pass stops
page-faulting its freed activations back in, and the result file names the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_removes_the_page_faults_of_a_feature_pass(
    tmp_path: Path, data_root: Path
) -> None:
    out = tmp_path / "feature_pass.json"
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "feature_pass.py"), "--model", "simclr-r18q-cifar10",
        "--images", "128", "--threads", "1", "--rounds", "1", "--backends", "torch", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["machine"]["cpu"] and result["machine"]["torch_threads"] == 1 and result["images"] == 128
    faults = result["summary"]["torch"]["minor_faults"]
    # glibc as it starts maps and zeroes fresh pages for every batch's activations (thousands of
    # faults even for two batches of 64 at 32 px); with the thresholds raised they stay in the heap.
    assert faults["default"] > 1000 and faults["keep"] < faults["default"] / 10, faults
    assert result["runs"]["torch"]["keep"][0]["images_per_s"] > 0
