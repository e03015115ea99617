"""The progress ticker: a line on a real pseudo-terminal, nothing at all on a pipe or file."""

from __future__ import annotations

import io
import os
import pty
import time

from gate._cli_progress import Ticker


def test_a_terminal_sees_what_is_being_done_then_the_line_is_erased() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            with Ticker("signing 3 images", tty, delay=0.05, every=0.05) as ticker:
                assert ticker.enabled
                time.sleep(0.4)
            time.sleep(0.05)
        shown = os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "sealgate: signing 3 images… 0 s" in shown
    assert shown.endswith("\r\x1b[2K")  # nothing is left on the line for the results


def test_quick_work_and_non_terminals_get_nothing() -> None:
    pipe = io.StringIO()
    with Ticker("verifying 1 image", pipe, delay=0, every=0.01) as ticker:
        time.sleep(0.1)
    assert not ticker.enabled and pipe.getvalue() == ""
    leader, follower = pty.openpty()
    try:
        with (
            os.fdopen(follower, "w", closefd=False) as tty,
            Ticker("verifying 1 image", tty, delay=5),
        ):
            pass  # done before the delay: never shown
        os.set_blocking(leader, False)
        try:
            shown = os.read(leader, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(leader)
        os.close(follower)
    assert shown == b""
