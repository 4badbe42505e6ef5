"""PyTorch twins of Neurite's model zoo (layers/models/), with the same
parameter names, so state dicts move between the two. Used by the golden
tests (make_layer_golden.py) and by the benchmarks in bench/."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(i, o, stride=1, groups=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, groups=groups, bias=False)


def mlp(in_channels=1, image_size=28, num_classes=10, **_):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, 1024), nn.ReLU(),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, num_classes))


class Cnn(nn.Module):
    def __init__(self, in_channels=1, image_size=28, num_classes=10, **_):
        super().__init__()
        self.features = nn.Sequential(conv3x3(in_channels, 32), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                      conv3x3(32, 64), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        side = image_size // 4
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Dropout(0.25),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(i, o, stride), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = conv3x3(o, o), nn.BatchNorm2d(o)
        self.shortcut = None
        if stride != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride=stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    def __init__(self, depth, in_channels=1, image_size=28, num_classes=10, **_):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1, self.bn1 = conv3x3(in_channels, 16), nn.BatchNorm2d(16)
        i = 16
        for stage, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(i, width, 2 if b == 0 and stage > 0 else 1))
                i = width
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        return self.fc(y.mean((2, 3)))


class DepthwiseSeparable(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.dw, self.bn1 = conv3x3(i, i, stride, groups=i), nn.BatchNorm2d(i)
        self.pw, self.bn2 = nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o)

    def forward(self, x):
        return F.relu(self.bn2(self.pw(F.relu(self.bn1(self.dw(x))))))


class MobileNet(nn.Module):
    def __init__(self, in_channels=1, image_size=28, num_classes=10, **_):
        super().__init__()
        layers, i = [conv3x3(in_channels, 32), nn.BatchNorm2d(32), nn.ReLU()], 32
        for o, s in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
            layers.append(DepthwiseSeparable(i, o, s))
            i = o
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(i, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def encoder_layer(d, heads, ffn, dropout, activation, norm_first):
    return nn.TransformerEncoderLayer(d, heads, ffn, dropout, activation=activation, batch_first=True,
                                      norm_first=norm_first)


class VitTiny(nn.Module):
    PATCH, WIDTH, DEPTH, HEADS, FFN = 4, 96, 4, 3, 192

    def __init__(self, in_channels=1, image_size=28, num_classes=10, dropout=0.1, **_):
        super().__init__()
        w, p = self.WIDTH, self.PATCH
        self.patch_embed = nn.Conv2d(in_channels, w, p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (image_size // p) ** 2, w) * 0.02)
        self.layers = nn.ModuleList(
            [encoder_layer(w, self.HEADS, self.FFN, dropout, "gelu", True) for _ in range(self.DEPTH)])
        self.norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, num_classes)

    def forward(self, x):
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        y = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], 1) + self.pos_embed
        for layer in self.layers:
            y = layer(y)
        return self.head(self.norm(y)[:, 0])


class Transformer(nn.Module):
    WIDTH, DEPTH, HEADS, FFN = 256, 4, 4, 1024

    def __init__(self, num_classes=10, vocab_size=8192, seq_len=128, dropout=0.1, **_):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, self.WIDTH)
        self.position = nn.Embedding(seq_len, self.WIDTH)
        self.layers = nn.ModuleList([encoder_layer(self.WIDTH, self.HEADS, self.FFN, dropout, "relu", False)
                                     for _ in range(self.DEPTH)])
        self.head = nn.Linear(self.WIDTH, num_classes)

    def forward(self, tokens):
        y = self.embedding(tokens) + self.position(torch.arange(tokens.shape[1]))
        for layer in self.layers:
            y = layer(y)
        return self.head(y.mean(1))


def make_model(name, **options):
    builders = {"mlp": mlp, "cnn": Cnn, "mobilenet": MobileNet, "vit-tiny": VitTiny, "transformer": Transformer,
                "resnet20": lambda **o: ResNet(20, **o), "resnet32": lambda **o: ResNet(32, **o),
                "resnet56": lambda **o: ResNet(56, **o)}
    return builders[name](**options)
