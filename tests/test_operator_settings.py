"""`kubetune-operator` parses its flags into one settings object for the handlers (kopf's memo),
over the environment, and writes nothing back into the environment."""

from __future__ import annotations

import os
from typing import Any

import kopf
import pytest
from kubetune_operator import main as entry
from kubetune_operator.handlers import settings_of


def test_flags_override_the_environment_in_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("KUBETUNE_METRICS_BIND", "0.0.0.0:1")
    monkeypatch.setenv("KUBETUNE_STATUS_INTERVAL", "0.25")
    monkeypatch.delenv("KUBETUNE_KUBE_CONTEXT", raising=False)
    before = dict(os.environ)
    entry.main(["--metrics-bind", "127.0.0.1:2", "--context", "gpu", "-n", "ml"])
    assert dict(os.environ) == before
    (call,) = calls
    settings = settings_of(call["memo"])
    assert settings.metrics_bind == "127.0.0.1:2"  # the flag
    assert settings.status_interval == 0.25  # the environment
    assert settings.kube_context == "gpu" and call["namespaces"] == ["ml"]


def test_a_plain_kopf_run_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_WORKERS", "7")
    memo = kopf.Memo()
    assert settings_of(memo).workers == 7 and settings_of(memo) is memo.settings
