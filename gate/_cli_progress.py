"""A one-line "still working" ticker on stderr for long runs, on a terminal only.

Verifying many images or signing against a slow registry can take minutes
with nothing on screen. After ``delay`` seconds the ticker shows what is
being done and for how long, rewriting one line; it erases it when the work
ends. When stderr is not a terminal (CI logs, pipes, files) it writes nothing.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TextIO


class Ticker:
    """``with Ticker("verifying 120 images", sys.stderr): ...``"""

    def __init__(
        self, what: str, stream: TextIO, *, delay: float = 1.0, every: float = 0.5
    ) -> None:
        self.what, self.stream, self.delay, self.every = what, stream, delay, every
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Ticker:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._shown:
            self.stream.write("\r\x1b[2K")  # erase the line: results follow on stdout
            self.stream.flush()

    def _run(self) -> None:
        began = time.monotonic()
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            elapsed = time.monotonic() - began
            self.stream.write(f"\r\x1b[2Ksealgate: {self.what}… {elapsed:.0f} s")
            self.stream.flush()
            self._shown = True
            self._stop.wait(self.every)
