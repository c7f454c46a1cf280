"""A trainer written for Katib: it knows nothing of kubetune and only prints its metrics.

An MLP on scikit-learn's bundled `digits`, trained with PyTorch on CPU. After every epoch it
prints one line in Katib's StdOut format,

    2026-12-07T10:00:00Z epoch=3 loss=0.4120 accuracy=0.9111

or, with `--metrics-file PATH`, writes the line there instead (`--format json`: Katib's JSON
lines, values as strings). kubetune's stdout and file collectors read these unchanged.

    python katib_train.py --lr=0.01 --epochs=9
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-delay", type=float, default=0.0, help="seconds per epoch extra")
    parser.add_argument("--metrics-file", help="write the lines here instead of stdout")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    return parser.parse_args(argv)


def line(epoch: int, loss: float, accuracy: float, form: str) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "json":
        values = {"epoch": str(epoch), "loss": f"{loss:.4f}", "accuracy": f"{accuracy:.4f}"}
        return json.dumps({**values, "timestamp": stamp})
    return f"{stamp} epoch={epoch} loss={loss:.4f} accuracy={accuracy:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    model = nn.Sequential(nn.Linear(64, args.units), nn.ReLU(), nn.Linear(args.units, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    out = open(args.metrics_file, "a") if args.metrics_file else sys.stdout  # noqa: SIM115
    print(f"training {args}", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss_fn(model(xt[batch]), yt[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            loss = float(loss_fn(logits, yv))
            accuracy = float((logits.argmax(1) == yv).float().mean())
        print(line(epoch, loss, accuracy, args.format), file=out, flush=True)
        time.sleep(args.epoch_delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
