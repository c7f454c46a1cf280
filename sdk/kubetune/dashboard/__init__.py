"""The kubetune dashboard: live pages of tuning jobs in a browser, and a one-file HTML report.

`serve(client, host, port)` runs the read-only web server over `kubetune.Client` (a work
directory or a cluster, exactly as the CLI reaches it); `write_report(client, job, path)`
writes the same charts and trials table into one self-contained HTML file. The page's assets
(the app and Apache ECharts) ship inside this package: no CDN, no npm step.
"""

from __future__ import annotations

from ._report import write_report
from ._serve import serve

__all__ = ["serve", "write_report"]
