#!/usr/bin/python3
"""conv2d forward + backward: Neurite against PyTorch in the same run, same
shapes, same threads. Prints a table of medians and the ratio.

    /usr/bin/python3 bench/compare_conv.py [--build build] [--threads 2] [--batch 128]

Needs Debian's python3-torch with libopenblas0-openmp (`bash scripts/install-deps.sh --bench`, which `make bench` runs).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeats", type=int, default=10)
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
shapes_path = os.path.join(here, "conv_shapes.json")

ours = {}
out = subprocess.run([os.path.join(args.build, "bench", "bench_conv"), "--shapes", shapes_path, "--batch",
                      str(args.batch), "--threads", str(args.threads), "--repeats", str(args.repeats)],
                     check=True, capture_output=True, text=True).stdout
for line in out.splitlines():
    r = json.loads(line)
    ours[r["name"]] = r["ms"]

torch.set_num_threads(args.threads)
print(f"conv2d 3x3 forward+backward, batch {args.batch}, {args.threads} threads "
      f"(PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()})")
print(f"{'shape':<22}{'neurite ms':>12}{'pytorch ms':>12}{'pytorch/neurite':>17}")
for s in json.load(open(shapes_path)):
    x = torch.randn(args.batch, s["c"], s["hw"], s["hw"], requires_grad=True)
    w = torch.randn(s["f"], s["c"], 3, 3, requires_grad=True)
    times = []
    for r in range(args.repeats + 2):
        t0 = time.perf_counter()
        y = F.conv2d(x, w, None, stride=s["stride"], padding=1)
        y.backward(torch.ones_like(y))
        t = (time.perf_counter() - t0) * 1000
        x.grad = None
        w.grad = None
        if r >= 2:
            times.append(t)
    theirs = statistics.median(times)
    print(f"{s['name']:<22}{ours[s['name']]:>12.2f}{theirs:>12.2f}{theirs / ours[s['name']]:>17.2f}")
