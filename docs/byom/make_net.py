"""Your own network, trained with plain PyTorch (not SAR Lab), exported to ONNX; writes
net.onnx, train.npz and test.npz in the current folder (docs/byom.md, README).
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
np.savez("train.npz", X=Xtr, y=ytr)
np.savez("test.npz", X=Xte, y=yte)

torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(32, 10),
)
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
xt, yt = torch.from_numpy(Xtr), torch.from_numpy(ytr)
for _epoch in range(40):
    for idx in torch.randperm(len(xt)).split(64):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
        opt.step()
net.eval()
torch.onnx.export(
    net,
    torch.zeros(1, 1, 8, 8),
    "net.onnx",
    dynamo=False,
    input_names=["x"],
    output_names=["logits"],
    dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
)
