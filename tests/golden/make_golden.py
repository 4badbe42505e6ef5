#!/usr/bin/python3
"""Writes PyTorch 1.13 reference values for tests/autograd/golden_test.cpp.

Run with Debian's python3-torch (the `python3` first on PATH may lack it):

    /usr/bin/python3 tests/golden/make_golden.py tests/golden/data

Each case is a folder of .npy files: inputs, the upstream gradient `g`, the
output `y` and the gradients `d<input>` of sum(y * g).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")


def save(case, **arrays):
    folder = os.path.join(OUT, case)
    os.makedirs(folder, exist_ok=True)
    for name, value in arrays.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().numpy()
        value = np.require(value, requirements="C")  # keeps 0-d arrays 0-d
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        np.save(os.path.join(folder, name + ".npy"), value)


def leaves(*shapes):
    return [torch.randn(*s, requires_grad=True) for s in shapes]


def backward_with_g(y):
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return g


# conv2d: stride, padding, dilation, groups, depthwise, pointwise.
conv_cases = {
    "conv_basic": ((2, 3, 8, 8), (4, 3, 3, 3), dict()),
    "conv_stride_pad": ((2, 4, 9, 7), (6, 4, 3, 3), dict(stride=2, padding=1)),
    "conv_dilation_rect": ((1, 2, 10, 9), (3, 2, 3, 2), dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1))),
    "conv_groups": ((2, 6, 7, 7), (9, 2, 3, 3), dict(padding=1, groups=3)),
    "conv_depthwise": ((2, 8, 8, 8), (8, 1, 3, 3), dict(stride=2, padding=1, groups=8)),
    "conv_pointwise": ((3, 5, 6, 6), (7, 5, 1, 1), dict()),
}
for case, (xs, ws, kw) in conv_cases.items():
    x, w, b = leaves(xs, ws, (ws[0],))
    y = F.conv2d(x, w, b, **kw)
    g = backward_with_g(y)
    save(case, x=x, w=w, b=b, y=y, g=g, dx=x.grad, dw=w.grad, db=b.grad)

# batch_norm in training (batch statistics, running update) and in eval.
for case, training in (("batch_norm_train", True), ("batch_norm_eval", False)):
    x, w, b = leaves((4, 3, 5, 5), (3,), (3,))
    rm0, rv0 = torch.randn(3) * 0.1, torch.rand(3) + 0.5
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
    g = backward_with_g(y)
    save(case, x=x, w=w, b=b, running_mean_in=rm0, running_var_in=rv0, running_mean=rm, running_var=rv, y=y, g=g,
         dx=x.grad, dw=w.grad, db=b.grad)

# layer_norm over the last dimension and over the last two.
for case, shape, norm in (("layer_norm_last", (2, 5, 16), (16,)), ("layer_norm_two", (3, 4, 6), (4, 6))):
    x, w, b = leaves(shape, norm, norm)
    y = F.layer_norm(x, norm, w, b, eps=1e-5)
    g = backward_with_g(y)
    save(case, x=x, w=w, b=b, y=y, g=g, dx=x.grad, dw=w.grad, db=b.grad)

# attention: softmax(q k^T / sqrt(d) + mask) v, with a key padding mask and causal.
q, k, v = leaves((2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 4))
pad = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]])
scores = q @ k.transpose(-1, -2) / np.sqrt(8) + torch.zeros(2, 1, 1, 6).masked_fill(pad.bool()[:, None, None, :], float("-inf"))
y = torch.softmax(scores, -1) @ v
g = backward_with_g(y)
save("attention_padding", q=q, k=k, v=v, key_padding_mask=pad.long(), y=y, g=g, dq=q.grad, dk=k.grad, dv=v.grad)

q, k, v = leaves((1, 2, 7, 4), (1, 2, 7, 4), (1, 2, 7, 4))
causal = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1)
y = torch.softmax((q @ k.transpose(-1, -2)) / 2.0 + torch.zeros(7, 7).masked_fill(causal, float("-inf")), -1) @ v
g = backward_with_g(y)
save("attention_causal", q=q, k=k, v=v, y=y, g=g, dq=q.grad, dk=k.grad, dv=v.grad)

# cross_entropy with an ignored target, with and without label smoothing.
for case, smoothing in (("cross_entropy", 0.0), ("cross_entropy_smoothed", 0.1)):
    (logits,) = leaves((8, 5))
    target = torch.tensor([0, 4, 2, -100, 1, 3, 3, 0])
    y = F.cross_entropy(logits, target, ignore_index=-100, label_smoothing=smoothing)
    y.backward()
    save(case, logits=logits, target=target.long(), y=y.reshape(()), dlogits=logits.grad)

# pooling and gelu, which PyTorch defines by convention.
(x,) = leaves((2, 3, 9, 8))
y = F.max_pool2d(x, 3, stride=2, padding=1)
g = backward_with_g(y)
save("max_pool", x=x, y=y, g=g, dx=x.grad)
(x,) = leaves((2, 3, 9, 8))
y = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=True)
g = backward_with_g(y)
save("avg_pool", x=x, y=y, g=g, dx=x.grad)
(x,) = leaves((2, 3, 9, 7))
y = F.adaptive_avg_pool2d(x, (4, 3))
g = backward_with_g(y)
save("adaptive_avg_pool", x=x, y=y, g=g, dx=x.grad)
for case, approx in (("gelu", "none"), ("gelu_tanh", "tanh")):
    (x,) = leaves((4, 16))
    y = F.gelu(x, approximate=approx)
    g = backward_with_g(y)
    save(case, x=x, y=y, g=g, dx=x.grad)

print(f"wrote golden values with PyTorch {torch.__version__} to {OUT}")


# Fake quantisation and its observers (tests/autograd/golden_test.cpp,
# tests/layers/quantize_test.cpp), seeded afresh so the cases above keep their
# values: fake_quant_tensor and fake_quant_channel (x, scale, zero_point, y, g,
# dx); observer_activation and observer_weight (FakeQuantize with moving-average
# min/max observers as SparseML configures them, qint8: batches x0..x2, then
# min_val, max_val, scale, zero_point and the last output y).
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver

torch.manual_seed(15)
# The op, values inside and outside the grid's range.
x = (torch.randn(4, 5, 6) * 3).requires_grad_()
scale, zp = torch.tensor([0.05]), torch.tensor([-3])
y = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zp.item()), -128, 127)
g = torch.randn_like(y)
(y * g).sum().backward()
save("fake_quant_tensor", x=x, scale=scale, zero_point=zp.long(), y=y, g=g, dx=x.grad)

x = (torch.randn(6, 4, 3, 3) * 2).requires_grad_()
scale = torch.rand(6) * 0.03 + 0.005
zp = torch.randint(-20, 20, (6,), dtype=torch.int32)
y = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, -128, 127)
g = torch.randn_like(y)
(y * g).sum().backward()
save("fake_quant_channel", x=x, scale=scale, zero_point=zp.long(), y=y, g=g, dx=x.grad)

# Observers over three batches, as SparseML's QuantizationArgs build them (qint8).
cases = {
    "observer_activation": (FakeQuantize(observer=MovingAverageMinMaxObserver, dtype=torch.qint8,
                                         qscheme=torch.per_tensor_affine, quant_min=-128, quant_max=127),
                            lambda i: torch.relu(torch.randn(8, 3, 5, 5) * (1 + i)) - 0.1 * i),
    "observer_weight": (FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, dtype=torch.qint8,
                                     qscheme=torch.per_channel_symmetric, quant_min=-128, quant_max=127, ch_axis=0),
                        lambda i: torch.randn(4, 3, 3, 3) * (0.5 + 0.25 * i)),
}
for case, (fq, make) in cases.items():
    batches = [make(i) for i in range(3)]
    for b in batches:
        y = fq(b)
    obs = fq.activation_post_process
    save(case, x0=batches[0], x1=batches[1], x2=batches[2], min_val=obs.min_val.reshape(-1),
         max_val=obs.max_val.reshape(-1), scale=fq.scale.reshape(-1), zero_point=fq.zero_point.reshape(-1).long(), y=y)
