#!/usr/bin/python3
"""Writes PyTorch 1.13 optimizer trajectories and LR schedules for
tests/optim/optim_test.cpp.

    /usr/bin/python3 tests/golden/make_optim_golden.py tests/golden/data

Case `optim_<name>`: p0, c (steps, 3, 4) and p (steps, 3, 4): the weights after
each step of minimising sum(p * c[t]) + 0.5 * sum(p^2). Case `schedules`: the
lr of each epoch per scheduler, base lr 1.
"""
import os
import sys

import numpy as np
import torch

torch.manual_seed(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")
STEPS = 6
p0 = torch.randn(3, 4)
c = torch.randn(STEPS, 3, 4)
configs = {
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.95), weight_decay=0.1),
    "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1),
}


def write_trajectory(name, make, p0, c):
    p = p0.clone().requires_grad_(True)
    opt = make(p)
    trajectory = []
    for t in range(c.shape[0]):
        opt.zero_grad()
        ((p * c[t]).sum() + 0.5 * (p * p).sum()).backward()
        opt.step()
        trajectory.append(p.detach().clone())
    folder = os.path.join(OUT, "optim_" + name)
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "p0.npy"), p0.numpy())
    np.save(os.path.join(folder, "c.npy"), c.numpy())
    np.save(os.path.join(folder, "p.npy"), torch.stack(trajectory).numpy())


for name, make in configs.items():
    write_trajectory(name, make, p0, c)

# AdamW over 30 steps, checked to a relative 1e-6: where weight decay is
# applied (before the Adam step), the bias corrections' step count and where
# eps sits (eps = 1e-3 makes it matter) each move these by more than that.
# Drawn after the cases above, so theirs stay as they were.
LONG_STEPS = 30
p0_long = torch.randn(3, 4)
c_long = torch.randn(LONG_STEPS, 3, 4)
long_configs = {
    "adamw_long": lambda p: torch.optim.AdamW([p], lr=0.02, weight_decay=0.05),
    "adamw_long_eps": lambda p: torch.optim.AdamW([p], lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.3),
}
for name, make in long_configs.items():
    write_trajectory(name, make, p0_long, c_long)

schedulers = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5),
    "multistep": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.1),
    "exponential": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
    "linear": lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 4),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.01),
}
folder = os.path.join(OUT, "schedules")
os.makedirs(folder, exist_ok=True)
for name, make in schedulers.items():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make(opt)
    lrs = []
    for epoch in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.save(os.path.join(folder, name + ".npy"), np.array(lrs, dtype=np.float32))
