"""Epochs that fit in the given seconds, from the probe's views/s (rows after warm-up)."""

import csv
import statistics
import sys

rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("views_per_s")]
vps = statistics.median(float(r["views_per_s"]) for r in rows[1:])
seconds = float(sys.argv[2])
per_epoch = 2 * 50000 / vps + 0.6 + 0.4  # loader start-up per epoch; monitor every 10 epochs
print(max(1, min(200, int(seconds / per_epoch))), file=sys.stdout)
print(f"probe: {vps:.0f} views/s, {per_epoch:.2f} s/epoch, {seconds:.0f} s", file=sys.stderr)
