"""One ``ekws run`` per data dir: a second one exits 2 naming the dir and the holder's pid.

Two services on one data dir would both run every rule (double file writes,
double dials) and split the stored state; the lock is an ``flock`` the kernel
drops when the holder exits, also on ``kill -9``.
"""

from __future__ import annotations

import subprocess
import sys

from helpers.service import ENV, Service, write_etc


def _second_run(etc):
    return subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(etc)], capture_output=True,
                          text=True, env=ENV, cwd=etc.parent, timeout=30)


def test_a_second_run_on_the_same_data_dir_exits_2_naming_the_holder(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as first:
        second = _second_run(etc)
        assert second.returncode == 2, second.stderr
        assert "is in use by another ekws run" in second.stderr
        assert f"pid {first.proc.pid}" in second.stderr
        assert str(tmp_path / "data") in second.stderr
        assert first.proc.poll() is None  # the first one is untouched
        assert first.json("GET", "/streams")[0] == 200


def test_the_lock_goes_with_its_holder_even_on_kill_9(tmp_path):
    etc = write_etc(tmp_path)
    first = Service(etc)
    first.kill()
    with Service(etc) as again:  # starts: the kernel dropped the lock
        assert again.json("GET", "/streams")[0] == 200
        assert again.stop() == 0
    with Service(etc) as third:  # and a clean stop released it
        assert third.json("GET", "/streams")[0] == 200
