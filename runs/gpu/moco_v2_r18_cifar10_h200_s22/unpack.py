import gzip
import json
import sys
from pathlib import Path

here, dest = Path(__file__).parent, Path(sys.argv[1])
blob = (here / "cifar10.bin").read_bytes()
for split, cls, name, off, n in json.loads(gzip.decompress((here / "cifar10.json.gz").read_bytes())):
    d = dest / split / cls
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(blob[off : off + n])
print("unpacked", dest)
