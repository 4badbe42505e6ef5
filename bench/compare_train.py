#!/usr/bin/python3
"""Training step time (forward, backward, SGD step): Neurite's bench-train
against PyTorch on the same model definitions (tests/golden/zoo.py), batch
sizes and threads, in one run. Prints medians, the ratio and each side's peak memory (one process per model).

    /usr/bin/python3 bench/compare_train.py [--build build] [--threads 2] [--steps 20]

With --sparsities, the models are pruned first (every Linear, Conv2d and
attention projection weight, magnitude, one shot) and each sparsity is timed
on Neurite's sparse kernels and on its dense masked kernels; PyTorch trains
the dense model (its masked training runs at dense speed: we measured
masked/dense 0.98-1.00).

    /usr/bin/python3 bench/compare_train.py --sparsities 0,0.5,0.8,0.9,0.95,0.98 [--mask-type unstructured]
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
ap.add_argument("--sparsities", help="comma-separated sparsities: time sparse against dense masked kernels")
ap.add_argument("--mask-type", default="unstructured")
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


def neurite_step(name, *flags):
    out = subprocess.run([os.path.join(args.build, "neurite"), "bench-train", name, "--threads",
                          str(args.threads), "--steps", str(args.steps), "--json", *flags],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


if args.sparsities:
    print(f"training step of pruned models ({args.mask_type}), {args.threads} threads, median of {args.steps} "
          f"(PyTorch {torch.__version__}, dense)")
    print(f"{'model':<12}{'sparsity':>9}{'sparse ms':>11}{'masked ms':>11}{'pytorch ms':>12}{'pytorch/sparse':>16}"
          f"{'masked/sparse':>15}{'sparse MiB':>12}{'masked MiB':>12}{'pytorch MiB':>13}{'on sparse':>11}")
    for name in args.models.split(","):
        theirs = pytorch_in_own_process(name)
        for sparsity in args.sparsities.split(","):
            flags = ["--sparsity", sparsity, "--mask-type", args.mask_type]
            sparse, masked = neurite_step(name, *flags), neurite_step(name, *flags, "--dense-kernels")
            print(f"{name:<12}{float(sparsity):>9.2f}{sparse['ms_per_step']:>11.2f}{masked['ms_per_step']:>11.2f}"
                  f"{theirs['ms']:>12.2f}{theirs['ms'] / sparse['ms_per_step']:>16.2f}"
                  f"{masked['ms_per_step'] / sparse['ms_per_step']:>15.2f}{sparse['peak_rss_mib']:>12.0f}"
                  f"{masked['peak_rss_mib']:>12.0f}{theirs['peak_mib']:>13.0f}"
                  f"{sparse['sparse_tensors']:>6}/{sparse['pruned_tensors']:<4}", flush=True)
    print("on sparse: pruned tensors whose layer chose sparse kernels; peak memory: resident set high-water mark")
    sys.exit(0)

print(f"training step, {args.threads} threads, median of {args.steps} (PyTorch {torch.__version__})")
print(f"{'model':<12}{'batch':>6}{'neurite ms':>12}{'pytorch ms':>12}{'pytorch/neurite':>17}"
      f"{'neurite MiB':>13}{'pytorch MiB':>13}")
for name in args.models.split(","):
    ours = neurite_step(name)
    theirs = pytorch_in_own_process(name)
    print(f"{name:<12}{ours['batch_size']:>6}{ours['ms_per_step']:>12.2f}{theirs['ms']:>12.2f}"
          f"{theirs['ms'] / ours['ms_per_step']:>17.2f}{ours['peak_rss_mib']:>13.0f}{theirs['peak_mib']:>13.0f}")
print("peak memory: resident set high-water mark of each process (one model each)")
