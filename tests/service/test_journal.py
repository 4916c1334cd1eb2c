"""Log lines carry syslog priorities when stderr is the journal, so `journalctl -p err` works.

systemd connects a service's stderr to journald and names that stream in
``$JOURNAL_STREAM`` (``device:inode``); journald reads a leading ``<N>`` of
each line as its priority. Here the "journal" is a pipe whose device and
inode the test puts in ``$JOURNAL_STREAM``, as systemd does for its socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from helpers.service import DEMO, ENV, S2_SQL, Lines, Service, write_etc


def _run(etc, *, journal: str | None, args=()):
    """`ekws run` with stderr on a pipe; JOURNAL_STREAM is that pipe ("match"), a given value, or unset."""
    read_end, write_end = os.pipe()
    env = dict(ENV)
    if journal == "match":
        info = os.fstat(write_end)
        env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    elif journal is not None:
        env["JOURNAL_STREAM"] = journal
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ekws", "run", "-c", str(etc), *args],
                                stdout=subprocess.DEVNULL, stderr=write_end, env=env, cwd=etc.parent)
    finally:
        os.close(write_end)
    return proc, Lines(os.fdopen(read_end, encoding="utf-8"))


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_under_the_journal_each_line_starts_with_its_priority(tmp_path):
    etc = write_etc(tmp_path)
    proc, err = _run(etc, journal="match", args=["--log-level", "DEBUG"])
    try:
        err.wait_for(r"^<6>INFO ekws\.service\.app: ready: REST API", timeout=15)
    finally:
        _stop(proc)
    err.thread.join(10)
    lines = err.lines
    assert lines and all(line[:3] in ("<7>", "<6>", "<4>", "<3>") for line in lines), lines
    assert any(line.startswith("<7>DEBUG ") for line in lines), lines
    # journald stamps each entry: no second time stamp in the line.
    assert not any(line[3:5] == "20" for line in lines), lines


def test_a_config_error_reaches_the_journal_as_an_error(tmp_path):
    etc = write_etc(tmp_path)
    (etc / "ekws.yaml").write_text("restPort: nope\n")
    proc, err = _run(etc, journal="match")
    assert proc.wait(15) == 2
    err.thread.join(10)
    assert err.lines and err.lines[0].startswith("<3>ekws: "), err.lines


def test_a_warning_is_priority_4_and_an_error_3(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as first:  # two streams stored over REST
        assert first.request("POST", "/streams", {"sql": S2_SQL})[0] == 201
        remote = 'CREATE STREAM far() WITH (DATASOURCE="/far", CONF_KEY="remote")'
        assert first.request("POST", "/streams", {"sql": remote})[0] == 201
        assert first.stop() == 0
    # Now s2 is declared too (the stored one is shadowed: a WARNING) and the
    # conf key `remote` is gone (far cannot be restored: an ERROR).
    etc = write_etc(tmp_path, streams=(DEMO, S2_SQL), websocket_yaml=(
        "default:\n  addr: ''\nsource:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n"))
    proc, err = _run(etc, journal="match")
    try:
        err.wait_for(r"^<4>WARNING ekws\.service\.app: stream s2 from the store is shadowed", timeout=15)
        err.wait_for(r"^<3>ERROR ekws\.service\.app: stream far from the store not restored", timeout=15)
    finally:
        _stop(proc)


def test_outside_the_journal_lines_are_plain(tmp_path):
    etc = write_etc(tmp_path)
    for journal in (None, "1:1"):  # unset, or inherited by a stderr that is not the journal's
        proc, err = _run(etc, journal=journal)
        try:
            err.wait_for(r"^20\S+ \S+ INFO ekws\.service\.app: ready: REST API", timeout=15)
        finally:
            _stop(proc)
        err.thread.join(10)
        assert not any(line.startswith("<") for line in err.lines), err.lines
