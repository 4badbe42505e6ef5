#!/usr/bin/python3
"""Training step time (forward, backward, SGD step): Neurite's bench-train
against PyTorch on the same model definitions (tests/golden/zoo.py), batch
sizes and threads, in one run. Prints medians, the ratio and each side's peak memory (one process per model).

    /usr/bin/python3 bench/compare_train.py [--build build] [--threads 2] [--steps 20]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "golden"))
import zoo  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--models", default="mlp,cnn,resnet20,transformer")
ap.add_argument("--pytorch-only", help=argparse.SUPPRESS)  # one model in a fresh process, for its peak memory
args = ap.parse_args()

CASES = {  # model: (batch, input shape of one example)
    "mlp": (256, (1, 28, 28)), "cnn": (128, (1, 28, 28)), "resnet20": (128, (3, 32, 32)),
    "mobilenet": (128, (1, 28, 28)), "vit-tiny": (128, (1, 28, 28)), "transformer": (32, (128,)),
}


def pytorch_step_ms(name):
    batch, shape = CASES[name]
    options = {} if name == "transformer" else {"in_channels": shape[0], "image_size": shape[1]}
    model = zoo.make_model(name, **options).train()
    x = torch.randint(0, 8192, (batch,) + shape) if name == "transformer" else torch.randn((batch,) + shape)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for s in range(3 + args.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


torch.set_num_threads(args.threads)
if args.pytorch_only:
    ms = pytorch_step_ms(args.pytorch_only)
    print(json.dumps({"ms": ms, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    sys.exit(0)


def pytorch_in_own_process(name):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--steps",
                          str(args.steps), "--pytorch-only", name], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


print(f"training step, {args.threads} threads, median of {args.steps} (PyTorch {torch.__version__})")
print(f"{'model':<12}{'batch':>6}{'neurite ms':>12}{'pytorch ms':>12}{'pytorch/neurite':>17}"
      f"{'neurite MiB':>13}{'pytorch MiB':>13}")
for name in args.models.split(","):
    out = subprocess.run([os.path.join(args.build, "neurite"), "bench-train", "--model", name, "--threads",
                          str(args.threads), "--steps", str(args.steps), "--json"],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    theirs = pytorch_in_own_process(name)
    print(f"{name:<12}{ours['batch_size']:>6}{ours['ms_per_step']:>12.2f}{theirs['ms']:>12.2f}"
          f"{theirs['ms'] / ours['ms_per_step']:>17.2f}{ours['peak_rss_mib']:>13.0f}{theirs['peak_mib']:>13.0f}")
print("peak memory: resident set high-water mark of each process (one model each)")
