"""ekws.wire.workers: a finished request's thread serves the next one (flat RSS under churn)."""

from __future__ import annotations

import threading

import pytest
from helpers.common import wait_until

from ekws.wire.workers import PARKED_NAME, Workers

pytestmark = pytest.mark.timeout(30)


def _run(workers: Workers, name: str) -> tuple[int, str]:
    """Submit one job and wait for it: (thread ident, the thread's name while it ran)."""
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def job() -> None:
        seen.append((threading.get_ident(), threading.current_thread().name))
        done.set()

    workers.submit(job, name=name)
    assert done.wait(5)
    return seen[0]


def test_a_parked_thread_takes_the_next_job_under_its_name() -> None:
    workers = Workers(idle=10)
    first, name1 = _run(workers, "ekws-peer-a")
    assert wait_until(lambda: workers.parked == 1)
    second, name2 = _run(workers, "ekws-peer-b")
    assert first == second and (name1, name2) == ("ekws-peer-a", "ekws-peer-b")
    assert wait_until(lambda: workers.parked == 1)
    assert [t.name for t in threading.enumerate() if t.ident == first] == [PARKED_NAME]
    workers.close()
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.ident == first])


def test_at_most_max_idle_threads_park_and_an_idle_one_ends_after_its_wait() -> None:
    workers = Workers(max_idle=2, idle=0.3)
    release = threading.Event()
    started = threading.Barrier(6)

    def job() -> None:
        started.wait(5)
        release.wait(5)

    for i in range(5):
        workers.submit(job, name=f"ekws-peer-{i}")
    started.wait(5)  # five threads at once: none was parked
    release.set()
    assert wait_until(lambda: workers.parked == 2)
    assert wait_until(lambda: workers.parked == 0, timeout=5)  # the idle wait ran out
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.name == PARKED_NAME])


def test_a_raising_job_ends_its_thread_and_the_next_job_gets_a_new_one() -> None:
    workers = Workers(idle=10)
    done = threading.Event()

    def bad() -> None:
        done.set()
        raise RuntimeError("handled by the caller's own wrapper in real use")

    hook_calls: list[object] = []
    old = threading.excepthook
    threading.excepthook = hook_calls.append
    try:
        workers.submit(bad, name="ekws-peer-bad")
        assert done.wait(5)
        assert wait_until(lambda: hook_calls)  # the thread ended on the exception
    finally:
        threading.excepthook = old
    ident, _ = _run(workers, "ekws-peer-next")  # a new thread serves the next job
    assert ident
    workers.close()


def test_trim_memory_runs_at_most_every_trim_every(monkeypatch: pytest.MonkeyPatch) -> None:
    from ekws.wire import workers as module

    calls: list[int] = []
    monkeypatch.setattr(module, "_trim_looked_up", True)
    monkeypatch.setattr(module, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(module, "_trim_next", 0.0)
    module.trim_memory()
    module.trim_memory()  # within TRIM_EVERY: skipped
    assert calls == [0]
    monkeypatch.setattr(module, "_trim_next", 0.0)
    module.trim_memory()
    assert calls == [0, 0]


def test_trim_memory_finds_glibc_or_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ekws.wire import workers as module

    monkeypatch.setattr(module, "_trim_looked_up", False)
    monkeypatch.setattr(module, "_malloc_trim", None)
    monkeypatch.setattr(module, "_trim_next", 0.0)
    module.trim_memory()  # the real malloc_trim on glibc; no error anywhere
    assert module._trim_looked_up
