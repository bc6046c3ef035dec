"""Does the fast opt-in mode keep accuracy? kNN top-1 on Imagenette, fp32 vs int8 (vs bf16).

    python benchmarks/quantized_knn.py [--model supervised-efficientnet-lite0] [--out ...json]

A real pretrained encoder (default: the built-in one) embeds Imagenette train (9,469 images)
and val (3,925) from ../shared/data with each backend; weighted kNN (k=20, T=0.07 and k=200,
T=0.1; cosine) classifies val from train. int8 activation ranges are calibrated on 256 train
images. Target: int8 within 0.5 points of fp32. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from machine import describe

import zoo
from zoo.evaluate import knn_eval
from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "imagenette"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=zoo.DEFAULT_MODEL)
    parser.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8", "torch-bf16"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quantized_knn.json"))
    args = parser.parse_args()
    encoder = zoo.load(args.model)
    rows = {}
    for backend in args.backends:
        t = time.perf_counter()
        rows[backend] = {
            f"k{k}": knn_eval(encoder, DATA, k=k, temperature=temp, backend=backend)["top1"]
            for k, temp in ((20, 0.07), (200, 0.1))
        }
        rows[backend]["seconds"] = round(time.perf_counter() - t, 1)
        print(backend, rows[backend], flush=True)
    base = rows.get("onnx") or rows.get("torch")
    for row in rows.values():
        if base:
            row["delta_k20_vs_fp32"] = round(row["k20"] - base["k20"], 2)
            row["delta_k200_vs_fp32"] = round(row["k200"] - base["k200"], 2)
    # Seconds are this machine's: compare them within one result file, never across machines.
    result = {
        "model": args.model,
        "data": "imagenette train -> val",
        "top1_percent": rows,
        "machine": describe(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
