"""kubetune's PyTorch trainer: an MLP on scikit-learn's bundled datasets, tuned by TuningJobs.

Offline by construction: `digits` (10-class classification) and `diabetes` (regression) ship
inside scikit-learn. Every epoch it saves a checkpoint (model, optimizer, scheduler, RNG states,
epoch) with `kubetune.save_checkpoint`, then reports validation metrics and training throughput
(`samples_per_second`) with `kubetune.report`, and stops as soon as kubetune says so. When
kubetune resumes a trial (a promotion, an eviction, a restarted run) it continues from the
checkpoint, bit for bit on CPU. Seeded and deterministic on CPU; on CUDA it trains in bf16
autocast (`--amp`, on by default there) with cuDNN autotuning.

    python train.py --lr=0.01 --optimizer=adam --epochs=20

With `--metrics-port` (or KUBETUNE_METRICS_PORT, which kubetune sets when the job's
metricsCollector is `prometheus`) it pushes nothing: it serves the metrics as Prometheus gauges
(`step` and one per metric) for kubetune to scrape, and stops when it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import kubetune

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "lr": 1e-2,
    "batch_size": 64,
    "hidden_layers": 2,
    "units": 64,
    "dropout": 0.1,
    "optimizer": "adam",
    "momentum": 0.9,
    "beta1": 0.9,
    "beta2": 0.999,
    "weight_decay": 0.0,
    "grad_clip": 0.0,
    "schedule": "none",
    "activation": "relu",
    "init": "he",
    "epochs": 10,
    "seed": 0,
    "fail_at_epoch": -1,
    "epoch_delay": 0.0,
    "threads": 1,
}
CHOICES = {
    "dataset": ["digits", "diabetes"],
    "optimizer": ["sgd", "adam", "adamw"],
    "schedule": ["none", "cosine", "plateau"],
    "activation": ["relu", "gelu", "tanh", "leaky_relu"],
    "init": ["he", "xavier"],
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = {**DEFAULTS, **{k: v for k, v in kubetune.trial_params().items() if k in DEFAULTS}}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in defaults.items():
        kind = type(DEFAULTS[name])
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=(lambda v, k=kind: k(float(v)) if k is int else k(v)),
            default=default,
            choices=CHOICES.get(name),
        )
    port = os.environ.get("KUBETUNE_METRICS_PORT")
    parser.add_argument(
        "--metrics-port", type=int, default=int(port) if port else None,
        help="serve Prometheus metrics on this port instead of pushing them",
    )
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address to serve them on")
    parser.add_argument(
        "--amp", choices=["auto", "on", "off"], default="auto",
        help="bf16 autocast on CUDA (auto: on when CUDA is used)",
    )
    parser.add_argument(
        "--metrics-linger", type=float, default=30.0,
        help="seconds to wait at the end for a scrape of the last values",
    )
    args = parser.parse_args(argv)
    if args.lr <= 0 or args.batch_size < 1 or args.epochs < 1 or args.hidden_layers < 0:
        parser.error("--lr, --batch-size and --epochs must be positive, --hidden-layers >= 0")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1) (got {args.dropout})")
    return args


class Exposed:
    """Metrics served as Prometheus gauges for kubetune to scrape (metricsCollector: prometheus)."""

    def __init__(self, host: str, port: int, names: list[str]) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        registry = CollectorRegistry()
        self.step = Gauge("step", "Epochs completed.", registry=registry)
        self.gauges = {n: Gauge(n, f"Validation {n}.", registry=registry) for n in names}
        self.scrapes = 0
        registry.register(self)  # collect() runs once per scrape: count them
        start_http_server(port, host, registry=registry)
        self.published_at = 0

    def collect(self) -> list[Any]:
        self.scrapes += 1
        return []

    def publish(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.gauges[name].set(value)
        self.step.set(step)  # last: a scrape never pairs a new step with old values
        self.published_at = self.scrapes

    def linger(self, limit: float) -> None:
        """Wait (at most `limit` seconds) until a scrape has seen the last values."""
        deadline = time.monotonic() + limit
        while self.scrapes <= self.published_at and time.monotonic() < deadline:
            time.sleep(0.05)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load(dataset: str, seed: int) -> tuple[torch.Tensor, ...]:
    data = load_digits() if dataset == "digits" else load_diabetes()
    X = data.data.astype(np.float32)
    y = data.target
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=seed)
    mean, std = X_train.mean(0), X_train.std(0) + 1e-6
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    if dataset == "diabetes":
        y_mean, y_std = y_train.mean(), y_train.std()
        y_train, y_val = (y_train - y_mean) / y_std, (y_val - y_mean) / y_std
        return (torch.tensor(X_train), torch.tensor(y_train, dtype=torch.float32)[:, None],
                torch.tensor(X_val), torch.tensor(y_val, dtype=torch.float32)[:, None],
                torch.tensor(float(y_std)))
    return (torch.tensor(X_train), torch.tensor(y_train), torch.tensor(X_val), torch.tensor(y_val),
            torch.tensor(1.0))


def build_model(inputs: int, outputs: int, args: argparse.Namespace) -> nn.Module:
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(args.hidden_layers):
        layers += [nn.Linear(width, args.units), ACTIVATIONS[args.activation](), nn.Dropout(args.dropout)]
        width = args.units
    layers.append(nn.Linear(width, outputs))
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if args.init == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def build_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    params = model.parameters()
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=args.lr, betas=(args.beta1, args.beta2), weight_decay=args.weight_decay)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": np.random.get_state(),
        "random": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed_everything(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = device.type == "cuda" and args.amp != "off"
    if device.type == "cpu":
        torch.set_num_threads(args.threads)  # small models: one thread per trial is fastest
        if args.amp == "on":
            print("--amp on: no CUDA device, training in float32", flush=True)
    else:
        torch.backends.cudnn.benchmark = True
    data = load(args.dataset, args.seed)
    X_train, y_train, X_val, y_val, y_scale = (to_device(t, device) for t in data)
    classify = args.dataset == "digits"
    model = build_model(X_train.shape[1], 10 if classify else 1, args).to(device)
    num_parameters = sum(p.numel() for p in model.parameters())  # an objective to trade off
    optimizer = build_optimizer(model, args)
    scheduler: Any = None
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    elif args.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    print(f"training on {device}: {vars(args)}", flush=True)
    exposed = None
    if args.metrics_port is not None:
        names = ["val_loss", "val_accuracy" if classify else "val_rmse", "samples_per_second"]
        exposed = Exposed(args.metrics_host, args.metrics_port, names)
        print(f"serving metrics on {args.metrics_host}:{args.metrics_port}", flush=True)
    first = 1
    resumed = kubetune.load_checkpoint()
    if resumed is not None:
        state, step = resumed
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
            if args.schedule == "cosine":  # a promotion may give more epochs than the parent had
                scheduler.T_max = args.epochs
        restore_rng(state["rng"], generator)
        first = step + 1
        print(f"resumed from the checkpoint of epoch {step}", flush=True)
    for epoch in range(first, args.epochs + 1):
        if epoch == args.fail_at_epoch:
            raise RuntimeError(f"failing on purpose at epoch {epoch} (--fail-at-epoch)")
        model.train()
        began = time.perf_counter()
        order = torch.randperm(len(X_train), generator=generator).to(device)
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(X_train[batch]), y_train[batch])
            loss.backward()
            if args.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        throughput = len(order) / max(time.perf_counter() - began, 1e-9)
        time.sleep(args.epoch_delay)
        model.eval()
        with torch.no_grad(), torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=amp
        ):
            out = model(X_val).float()
            val_loss = float(loss_fn(out, y_val))
        metrics = {"val_loss": val_loss}
        if classify:
            correct = int((out.argmax(1) == y_val).sum())
            metrics["val_accuracy"] = correct / len(y_val)  # exact, no float32 rounding
        else:
            metrics["val_rmse"] = math.sqrt(val_loss) * float(y_scale)
        if scheduler is not None:
            scheduler.step(val_loss) if args.schedule == "plateau" else scheduler.step()
        kubetune.save_checkpoint(  # before the report: a verdict never refers to an unsaved epoch
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(generator),
                "epoch": epoch,
            },
            epoch,
        )
        metrics["samples_per_second"] = throughput
        metrics["num_parameters"] = float(num_parameters)
        print(f"epoch {epoch}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
        if exposed is not None:
            exposed.publish(epoch, metrics)
        elif kubetune.report(step=epoch, **metrics):
            print(f"kubetune asked to stop after epoch {epoch}", flush=True)
            return 0
    if exposed is not None:
        exposed.linger(args.metrics_linger)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    sys.exit(main())
