"""Pack CIFAR-10's JPEG files (bit for bit) into one blob + index, to carry to the device."""

import json
import sys
from pathlib import Path

root, out = Path(sys.argv[1]), Path(sys.argv[2])
blob, index = bytearray(), []
for split in ("train", "test"):
    for cls in sorted(p.name for p in (root / split).iterdir()):
        for f in sorted((root / split / cls).iterdir()):
            data = f.read_bytes()
            index.append([split, cls, f.name, len(blob), len(data)])
            blob += data
(out / "cifar10.bin").write_bytes(bytes(blob))
(out / "cifar10.json").write_text(json.dumps(index, separators=(",", ":")))
print(len(index), len(blob))
