"""Models exported by PyTorch 1.13 in training mode (BatchNormalization and
Dropout kept), and PyTorch's weights after one SGD step on a fixed batch, for
the parity tests of GraphModule (tests/engine/graph_module_test.cpp).

For each model NAME at opsets 13 and 17: NAME_train_opsetK.onnx (the model
before the step), NAME_step.onnx (the same graph with PyTorch's weights and
running statistics after one step of SGD, lr 0.1, momentum 0, on the mean
cross-entropy), NAME_input.npy and NAME_target.npy (the batch; a model of
several inputs has its second in NAME_input2.npy, and so on). Dropout's ratio
is 0 in these files so that the step is deterministic.

    /usr/bin/python3 tests/golden/make_train_golden.py   # writes tests/golden/train/
"""
import copy
import os

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train")
torch.manual_seed(0)


class Cnn(nn.Module):
    """A ResNet-style CNN for (N, 1, 12, 12): conv-BN-ReLU, a residual block, a
    strided conv with bias, max pooling, dropout and a linear head."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv1 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(16 * 3 * 3, classes)

    def forward(self, x):
        y = self.stem(x)
        y = F.relu(y + self.bn1(self.conv1(y)))
        y = self.pool(F.relu(self.conv2(y)))
        return self.fc(self.drop(torch.flatten(y, 1)))


class Encoder(nn.Module):
    """Token ids (N, L) -> logits: a hand-written encoder with Erf-GELU, an
    attention mask from the padding (id 0), pre-norm LayerNorm, a learned
    positional embedding and a mean over the tokens."""

    def __init__(self, vocab=30, d=16, heads=2, length=6, classes=4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.1)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.drop = nn.Dropout(0.0)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        n, l = tokens.shape
        pad = (tokens == 0).view(n, 1, 1, l)
        x = self.embed(tokens) + self.pos
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        split = lambda t: t.reshape(n, l, self.heads, -1).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
        scores = scores.masked_fill(pad, float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, l, -1)
        x = x + self.drop(self.proj(att))
        x = x + self.ff2(F.gelu(self.ff1(self.norm2(x))))
        return self.head(x.mean(1))


def _no_dropout(model):
    """Dropout's ratio set to 0 everywhere, so that the step is deterministic."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


class ResNet18(torchvision.models.resnet.ResNet):
    """torchvision's ResNet-18 graph (BasicBlocks [2, 2, 2, 2], 7x7 stem, max
    pooling, downsample shortcuts) at 1/8 of its widths, so that the file stays
    small; module and parameter names are torchvision's."""

    def __init__(self, classes=10):
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=classes)
        self.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(64, classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = 8
        return super()._make_layer(block, planes // 8, blocks, stride, dilate)


def squeezenet(classes=10):
    """torchvision's SqueezeNet 1.1 graph (Fire modules, max pooling with
    ceil_mode, a convolutional classifier) at 1/4 of its widths."""
    Fire = torchvision.models.squeezenet.Fire
    model = torchvision.models.squeezenet1_1(num_classes=classes)
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 16, 16), Fire(32, 4, 16, 16), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 32, 32), Fire(64, 8, 32, 32), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 12, 48, 48), Fire(96, 12, 48, 48), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64))
    model.classifier[1] = nn.Conv2d(128, classes, kernel_size=1)
    return model


def transformer(vocab=30, d=16, classes=4):
    """torch's nn.TransformerEncoder (post-norm, ReLU feed-forward, a key
    padding mask from id 0) over embedded tokens, mean-pooled into a head."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2)
            self.head = nn.Linear(d, classes)

        def forward(self, tokens):
            return self.head(self.encoder(self.embed(tokens), src_key_padding_mask=tokens == 0).mean(1))

    return Model()


class Dense(nn.Module):
    """The ops of dense-prediction and pooling heads: reflection and
    replication padding, nearest and bilinear upsampling, LeakyReLU, SiLU, and
    reductions (max, log-sum-exp, L2 norm, product, sum) into a linear head."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2)
        self.fuse = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        y = F.leaky_relu(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")), 0.1)
        down = F.silu(self.conv2(F.pad(y, (0, 1, 0, 1), mode="replicate")))
        up = torch.cat([F.interpolate(down, scale_factor=2, mode="nearest"),
                        F.interpolate(down, size=y.shape[-2:], mode="bilinear", align_corners=False)[..., :8, :8]], 1)
        z = self.fuse(up)
        stats = [z.amax(dim=(2, 3)), torch.logsumexp(z.flatten(2), 2), z.norm(dim=(2, 3)),
                 torch.tanh(z[..., :2, :2]).prod(3).sum(2)]
        return self.fc(torch.cat(stats, 1))


class MaskedPool(nn.Module):
    """Two inputs, as a BERT-style export has them: token ids (N, L) and an
    attention mask (N, L) of 1 for tokens, 0 for padding; the embeddings'
    masked mean through a linear head."""

    def __init__(self, vocab=30, d=12, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.head = nn.Linear(d, classes)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1)
        return self.head((self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.0), nn.Linear(12, 3))


def with_weights(path, model, out_path):
    """The ONNX file at path with model's parameters and buffers as its initializers."""
    proto = onnx.load(path)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for init in proto.graph.initializer:
        if init.name in state:
            init.CopyFrom(onnx.numpy_helper.from_array(state[init.name], init.name))
    onnx.save(proto, out_path)


def export(name, model, x, target, input_names=("input",)):
    """x: the input, or a tuple of the inputs (named input_names)."""
    inputs = x if isinstance(x, tuple) else (x,)
    model.train()
    for opset in (13, 17):
        path = os.path.join(OUT, f"{name}_train_opset{opset}.onnx")
        dynamic = {n: {0: "batch"} for n in list(input_names) + ["output"]}
        torch.onnx.export(copy.deepcopy(model), inputs, path, opset_version=opset, input_names=list(input_names),
                          output_names=["output"], training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, dynamic_axes=dynamic)
        # Tracing ran a training forward, which moved the running statistics: the file gets the model's own.
        with_weights(path, model, path)
    stepped = copy.deepcopy(model)
    opt = torch.optim.SGD(stepped.parameters(), lr=0.1)
    F.cross_entropy(stepped(*inputs), target).backward()
    opt.step()
    with_weights(os.path.join(OUT, f"{name}_train_opset17.onnx"), stepped, os.path.join(OUT, f"{name}_step.onnx"))
    for k, t in enumerate(inputs):
        np.save(os.path.join(OUT, f"{name}_input{k + 1 if k else ''}.npy"), t.numpy())
    np.save(os.path.join(OUT, f"{name}_target.npy"), target.numpy())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    export("cnn", Cnn(), torch.randn(6, 1, 12, 12), torch.randint(0, 5, (6,)))
    tokens = torch.randint(1, 30, (5, 6))
    tokens[0, 4:] = 0
    tokens[3, 2:] = 0
    export("encoder", Encoder(), tokens, torch.randint(0, 4, (5,)))
    export("mlp", mlp(), torch.randn(7, 1, 4, 4), torch.randint(0, 3, (7,)))
    export("dense", Dense(), torch.randn(3, 2, 8, 8), torch.randint(0, 5, (3,)))
    # torchvision's architectures at small widths, on (4, 3, 64, 64): at 32x32 their last stages reach 1x1, where
    # BatchNormalization sees 4 values per channel and the gradients are ill-conditioned (PyTorch's own float32 and
    # float64 steps of MobileNetV2 differ by 0.06); at 64x64 they agree to 4e-5.
    images, labels = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    export("resnet18", ResNet18(), images, labels)
    export("mobilenet_v2", _no_dropout(torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25)), images, labels)
    export("mobilenet_v3_small",
           _no_dropout(torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.25)), images, labels)
    export("squeezenet", _no_dropout(squeezenet()), images, labels)
    export("shufflenet_v2", torchvision.models.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10),
           images, labels)
    export("transformer", transformer(), tokens, torch.randint(0, 4, (5,)))
    export("masked_pool", MaskedPool(), (tokens, (tokens != 0).float()), torch.randint(0, 3, (5,)),
           ("input_ids", "attention_mask"))
