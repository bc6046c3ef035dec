"""On the device after training: held-out test-resolution choice, kNN on the test split at the
chosen size (query encoder, and the key encoder if re-exported), a fallback backbone from the
checkpoint if the run did not finish. Writes /tmp/res/eval.json."""

import json
import sys
import time
from pathlib import Path

import torch
from zoo.training.test_resolution import at_test_size, holdout_knn

import zoo
from zoo.evaluate import knn_eval

data, res = sys.argv[2], Path("/tmp/res")
device = "cuda" if torch.cuda.is_available() else "cpu"
res.mkdir(exist_ok=True)
out = {}
deadline = time.time() + float(sys.argv[1])
for label, folder in (("query", Path("/tmp/run/export")), ("key", Path("/tmp/key/export"))):
    if not (folder / "model.safetensors").is_file():
        out[label] = "no export"
        continue
    enc = zoo.load_folder(folder).to(device)
    r = {"config_measured": json.loads((folder / "config.json").read_text()).get("measured")}
    t = time.time()
    cands = [(32, 32), (48, 48)]
    r["held_out_k200"] = holdout_knn(enc, data, cands, k=200, temperature=0.1)
    best = max(r["held_out_k200"], key=r["held_out_k200"].get)
    r["best"] = best
    rs, cs = (int(v) for v in best.split("/"))
    for size in sorted({best, "32/32"}):
        a, b = (int(v) for v in size.split("/"))
        e = at_test_size(enc, a, b)
        for k, temp in ((200, 0.1), (20, 0.07)):
            r[f"test_knn_k{k}_{size}"] = knn_eval(e, data, k=k, temperature=temp, backend="torch")["top1"]
    r["seconds"] = round(time.time() - t, 1)
    out[label] = r
    print(label, json.dumps(r), flush=True)
    (res / "eval.json").write_text(json.dumps(out, indent=1))
    if time.time() > deadline:
        break
if not (Path("/tmp/run/export") / "model.safetensors").is_file() and Path("/tmp/run/checkpoint.pt").is_file():
    from safetensors.torch import save_file

    state = torch.load("/tmp/run/checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    bb = {
        k[len("backbone.") :]: v.float().contiguous() for k, v in state.items() if k.startswith("backbone.")
    }
    save_file(bb, str(res / "backbone_from_checkpoint.safetensors"))
    out["fallback"] = "backbone_from_checkpoint.safetensors"
(res / "eval.json").write_text(json.dumps(out, indent=1))
