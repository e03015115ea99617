"""The leftover check itself: it sees a marked process, a mount under the session, a temp file.

tests/conftest.py runs it after every session; here each kind of leftover is
made on purpose and removed again, so the check is known to be able to fail.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

from tests import leftovers
from tests.conftest import require


def test_a_process_carrying_the_mark_is_found_until_it_exits(tmp_path: Path) -> None:
    token = secrets.token_hex(8)
    env = {**os.environ, leftovers.MARK: token}
    child = subprocess.Popen(["sleep", "30"], env=env)
    try:
        # Until the child has exec'd, /proc shows the forked parent (without the mark).
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        for _ in range(500):
            if cmdline.read_bytes().startswith(b"sleep\0"):
                break
            time.sleep(0.01)
        found = leftovers.marked_processes(token)
        assert [line.split()[0] for line in found] == [str(child.pid)]
        assert found[0].endswith("sleep 30")
        assert leftovers.marked_processes(secrets.token_hex(8)) == []
    finally:
        child.kill()
        child.wait(timeout=10)
    assert leftovers.marked_processes(token) == []
    before = leftovers.Snapshot.take()
    assert leftovers.find(token, before, tmp_path, wait=0).certain == []


def test_a_mount_under_the_session_directory_is_found(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root, to mount a tmpfs")
    before = leftovers.Snapshot.take()
    where = tmp_path / "session" / "mnt with space"
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], check=True)
    try:
        found = leftovers.find(secrets.token_hex(8), before, tmp_path / "session", wait=0)
        assert found.certain == [f"mount {where}"]
        elsewhere = leftovers.find(secrets.token_hex(8), before, tmp_path / "other", wait=0)
        assert elsewhere.certain == []
    finally:
        subprocess.run(["umount", str(where)], check=True)
    assert leftovers.find(secrets.token_hex(8), before, tmp_path, wait=0).certain == []


def test_a_new_temporary_entry_is_reported(tmp_path: Path) -> None:
    before = leftovers.Snapshot.take()
    made = Path(tempfile.mkdtemp(prefix="sealgate-leftover-probe."))
    try:
        likely = leftovers.find(secrets.token_hex(8), before, tmp_path, wait=0).likely
        assert f"temporary {made}" in likely
    finally:
        made.rmdir()
    likely = leftovers.find(secrets.token_hex(8), before, tmp_path, wait=0).likely
    assert f"temporary {made}" not in likely


def test_python_s_own_resource_tracker_is_not_a_leftover() -> None:
    import multiprocessing.resource_tracker as tracker

    token = os.environ.get(leftovers.MARK, "")
    tracker.ensure_running()  # a helper of this very process, ended when it exits
    assert not [p for p in leftovers.marked_processes(token) if "resource_tracker" in p]
