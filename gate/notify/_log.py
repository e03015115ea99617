"""The log sink: one JSON object per line, for ``journalctl``, ``docker logs`` and jq."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from gate.notify._base import Event, Sink


class LogSink(Sink):
    """Writes each event as a JSON line to a stream (default stderr) or appends to a file.

    A file is opened per batch, so log rotation by rename just works.
    """

    batch_size = 1000
    kind = "log"

    def __init__(self, stream: TextIO | None = None, *, path: Path | None = None) -> None:
        if path is not None:
            name, target = f"log file {path}", f"file:{path}"
        else:
            name = target = f"log {getattr(stream or sys.stderr, 'name', 'stream')}"
        super().__init__(name, target)
        self._stream = stream
        self._path = path
        self._lock = threading.Lock()

    def _send(self, events: Sequence[Event]) -> None:
        text = "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in events)
        with self._lock:
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as out:
                    out.write(text)
                return
            stream = self._stream or sys.stderr
            stream.write(text)
            stream.flush()
