"""The zoo's architectures written in PyTorch, for experiments/benchmarks/bench_zoo.py.

Small, independent definitions after the reference implementations the jaxcnn docstrings cite
(kuangliu/pytorch-cifar, akamaster/pytorch_resnet_cifar10, bearpaw/pytorch-classification,
Zagoruyko's wide-residual-networks, Page's ResNet-9, KellerJordan/cifar10-airbench), written
here from those designs (not copied), so their parameter counts check jaxcnn's independently.
Convolutions feeding a BatchNorm have no bias, as in jaxcnn (VGG keeps its conv bias, as
kuangliu's VGG). Inputs are NCHW (PyTorch's layout); use ``channels_last`` for speed.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(c_in, c_out, k=3, stride=1, relu=True):
  layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]
  return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class LeNet5(nn.Module):
  def __init__(self, c_in=3, classes=10):
    super().__init__()
    self.c1, self.c3 = nn.Conv2d(c_in, 6, 5), nn.Conv2d(6, 16, 5)
    self.c5, self.f6, self.out = nn.Conv2d(16, 120, 5), nn.Linear(120, 84), nn.Linear(84, classes)

  def forward(self, x):
    pad = max(0, 32 - x.shape[-1])
    x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
    x = F.avg_pool2d(torch.tanh(self.c3(x)), 2)
    x = torch.tanh(self.c5(x)).flatten(1)
    return self.out(torch.tanh(self.f6(x)))


def alexnet_cifar(classes=10, hidden=4096):
  return nn.Sequential(
      nn.Conv2d(3, 64, 11, 4, 5), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
      nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
      nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
      nn.Dropout(0.5), nn.Linear(256, hidden), nn.ReLU(),
      nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))


VGG = {"vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
       "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"]}


def vgg(name, classes=10):
  layers, c = [], 3
  for v in VGG[name]:
    if v == "M":
      layers.append(nn.MaxPool2d(2))
    else:
      layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
      c = v
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, classes))


class BasicBlock(nn.Module):
  def __init__(self, c_in, c_out, stride, shortcut):
    super().__init__()
    self.f = nn.Sequential(conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, relu=False))
    self.pad = 0
    self.proj = None
    if stride != 1 or c_in != c_out:
      if shortcut == "A":
        self.pad, self.stride = c_out - c_in, stride
      else:
        self.proj = conv_bn(c_in, c_out, 1, stride, relu=False)

  def forward(self, x):
    if self.proj is not None:
      s = self.proj(x)
    elif self.pad:
      s = F.pad(x[:, :, ::self.stride, ::self.stride],
                (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
    else:
      s = x
    return F.relu(self.f(x) + s)


class ResNet(nn.Module):
  def __init__(self, blocks, widths, shortcut="A", classes=10):
    super().__init__()
    layers, c = [conv_bn(3, widths[0])], widths[0]
    for i, (n, w) in enumerate(zip(blocks, widths)):
      for j in range(n):
        layers.append(BasicBlock(c, w, 2 if i > 0 and j == 0 else 1, shortcut))
        c = w
    self.body, self.fc = nn.Sequential(*layers), nn.Linear(c, classes)

  def forward(self, x):
    return self.fc(self.body(x).mean((2, 3)))


class PreActBlock(nn.Module):
  def __init__(self, c_in, c_out, stride):
    super().__init__()
    self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
    self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
    self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
    self.proj = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                 if stride != 1 or c_in != c_out else None)

  def forward(self, x):
    out = F.relu(self.bn1(x))
    s = self.proj(out) if self.proj is not None else x
    return self.conv2(F.relu(self.bn2(self.conv1(out)))) + s


class PreActResNet(nn.Module):
  def __init__(self, blocks, widths, stem, final_norm, classes=10):
    super().__init__()
    layers, c = [nn.Conv2d(3, stem, 3, 1, 1, bias=False)], stem
    for i, (n, w) in enumerate(zip(blocks, widths)):
      for j in range(n):
        layers.append(PreActBlock(c, w, 2 if i > 0 and j == 0 else 1))
        c = w
    if final_norm:
      layers += [nn.BatchNorm2d(c), nn.ReLU()]
    self.body, self.fc = nn.Sequential(*layers), nn.Linear(c, classes)

  def forward(self, x):
    return self.fc(self.body(x).mean((2, 3)))


class Residual(nn.Module):
  def __init__(self, c):
    super().__init__()
    self.f = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

  def forward(self, x):
    return x + self.f(x)


def resnet9(classes=10):
  return nn.Sequential(
      conv_bn(3, 64), conv_bn(64, 128), nn.MaxPool2d(2), Residual(128),
      conv_bn(128, 256), nn.MaxPool2d(2), conv_bn(256, 512), nn.MaxPool2d(2), Residual(512),
      nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, classes, bias=False))


def bn_cnn(widths=(32, 64, 128), classes=10):
  layers, c = [], 3
  for w in widths:
    layers += [conv_bn(c, w), nn.MaxPool2d(2)]
    c = w
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def _frozen_scale_bn(c):
  bn = nn.BatchNorm2d(c, eps=1e-12, momentum=0.4)
  bn.weight.requires_grad = False
  return bn


class SpeedNet(nn.Module):
  """airbench94_muon's CifarNet (the frozen BN scale and whitening kernel excluded from the
  trainable count by ``requires_grad``; bench_zoo counts them as jaxcnn does, see there)."""

  def __init__(self, widths=(64, 256, 256), classes=10):
    super().__init__()
    self.whiten = nn.Conv2d(3, 24, 2, bias=True)
    self.whiten.weight.requires_grad = False
    layers, c = [nn.GELU()], 24
    for w in widths:
      layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.MaxPool2d(2), _frozen_scale_bn(w),
                 nn.GELU(), nn.Conv2d(w, w, 3, padding=1, bias=False), _frozen_scale_bn(w),
                 nn.GELU()]
      c = w
    self.body = nn.Sequential(*layers, nn.MaxPool2d(3), nn.Flatten())
    self.head = nn.Linear(c, classes, bias=False)

  def forward(self, x):
    x = self.body(self.whiten(x))
    return self.head(x) / x.shape[-1]


def get(name: str) -> nn.Module:
  """The PyTorch twin of ``jaxcnn.models.get_model(name)`` (default arguments)."""
  table = {
      "lenet5": lambda: LeNet5(),
      "alexnet_cifar": lambda: alexnet_cifar(),
      "vgg11": lambda: vgg("vgg11"),
      "vgg16": lambda: vgg("vgg16"),
      "resnet20": lambda: ResNet((3, 3, 3), (16, 32, 64)),
      "resnet56": lambda: ResNet((9, 9, 9), (16, 32, 64)),
      "resnet18": lambda: ResNet((2, 2, 2, 2), (64, 128, 256, 512), "B"),
      "preact_resnet18": lambda: PreActResNet((2, 2, 2, 2), (64, 128, 256, 512), 64, False),
      "wide_resnet_16_4": lambda: PreActResNet((2, 2, 2), (64, 128, 256), 16, True),
      "resnet9": resnet9,
      "bn_cnn": lambda: bn_cnn(),
      "speednet": lambda: SpeedNet(),
  }
  return table[name]()


NAMES = ("lenet5", "alexnet_cifar", "vgg11", "vgg16", "resnet20", "resnet56", "resnet18",
         "preact_resnet18", "wide_resnet_16_4", "resnet9", "bn_cnn", "speednet")


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
  return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
