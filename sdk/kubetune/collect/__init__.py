"""Metrics from what a trial prints or writes (the stdout and file collectors).

`LineReader` parses lines into points; `Tailer` follows files on this machine (the local
runner's trial logs and metrics files, and the file collector's sidecar in a pod).
"""

from ._lines import MAX_LINE, LineReader, LineSplitter, ReadCounts
from ._tail import Tailer

__all__ = ["MAX_LINE", "LineReader", "LineSplitter", "ReadCounts", "Tailer"]
