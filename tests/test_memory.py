"""zoo.memory: glibc accepts the thresholds, and the commands that compute features set them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zoo import cli, memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_thresholds() -> None:
    assert memory.keep_freed_memory() is True


def test_the_commands_that_compute_features_keep_freed_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    # Set before the command runs, so even one that then fails (no such encoder) has it.
    assert cli.main(["eval", "no-such-encoder", "--data", str(tmp_path / "nowhere")]) == 2
    out = str(tmp_path / "x.npy")
    assert cli.main(["embed", str(tmp_path / "nowhere"), "--model", "no-such-encoder", "--out", out]) == 2
    index = ["index", "build", "--images", str(tmp_path), "--out", str(tmp_path / "i.npz")]
    assert cli.main([*index, "--model", "no-such-encoder"]) == 2
    assert calls == [1, 1, 1]
    # Commands that look things up leave glibc as it is.
    assert cli.main(["info", "no-such-encoder"]) == 2
    assert cli.main(["index", "info", str(tmp_path / "no-such-index")]) == 2
    assert calls == [1, 1, 1]
