"""`kubetune report JOB --html FILE`: one self-contained HTML file with the job page's charts and
trials table, for a colleague without a terminal or a CI artifact. It opens offline: the app,
ECharts and the data are inside, and its Content-Security-Policy admits only those scripts."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from ..client import Client
from ._data import read_job
from ._server import static_dir


def write_report(client: Client, name: str, path: str | Path) -> Path:
    """Write job `name`'s report to `path`; the path written."""
    payload = read_job(client, name)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(payload), encoding="utf-8")
    return out


def render(payload: dict[str, Any]) -> str:
    """The report's HTML for a job payload (`_data.job_payload`)."""
    static = static_dir()
    scripts = [
        (static / "vendor" / "echarts.min.js").read_text(encoding="utf-8"),
        (static / "app.js").read_text(encoding="utf-8"),
    ]
    style = (static / "app.css").read_text(encoding="utf-8")
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(_digest(s) for s in scripts),
            f"style-src {_digest(style)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    data = _json_in_html(payload)
    title = _text(f"{payload['job']['name']} - kubetune report")
    inline = "".join(f"<script>{s}</script>" for s in scripts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{title}</title><style>{style}</style></head><body>"
        '<header class="top"><span class="brand">kubetune report</span><span id="where"></span>'
        '<span id="banner" class="banner" hidden></span></header><main id="app"></main>'
        f'<script id="kubetune-report" type="application/json">{data}</script>{inline}'
        "</body></html>"
    )


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _json_in_html(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment: <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _text(value: str) -> str:
    import html

    return html.escape(value)
