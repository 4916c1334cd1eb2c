"""Buffer.take: the worker's batch take keeps order, counts and bounds right."""

from __future__ import annotations

import threading

from ekws.buffer import MAX_NOTICES, Buffer, Item
from ekws.errors import DecodeError, ErrorsCoalesced
from ekws.message import Message, Peer, State, Status

PEER = Peer("s", "/", "127.0.0.1:1", 1)


def msg(n: int) -> Message:
    return Message({"n": n}, PEER, 0)


def test_take_keeps_order_and_counts_messages_and_notices_apart() -> None:
    buffer = Buffer(10, "block")
    status = Status("s", State.CONNECTED, 0.0)
    buffer.put_batch([msg(0), msg(1)])
    buffer.put_notice(status)
    buffer.put_batch([msg(2)])
    batch = buffer.take(3)
    assert batch is not None and [getattr(i, "data", i) for i in batch] == [{"n": 0}, {"n": 1}, status]
    assert (len(buffer), buffer.notices) == (1, 0)
    assert buffer.take(64) is not None and (len(buffer), buffer.notices) == (0, 0)
    buffer.close()
    assert buffer.take(64) is None


def test_take_makes_room_for_a_blocked_producer() -> None:
    buffer = Buffer(4, "block")
    buffer.put_batch([msg(n) for n in range(4)])
    done = threading.Event()

    def produce() -> None:
        buffer.put_batch([msg(n) for n in range(4, 8)])
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert not done.wait(0.2)  # full: the producer waits
    first = buffer.take(64)
    assert first is not None and [m.data["n"] for m in first] == [0, 1, 2, 3]  # type: ignore[union-attr]
    assert done.wait(5)  # room again: the producer got in
    producer.join(5)
    rest = buffer.take(64)
    assert rest is not None and [m.data["n"] for m in rest] == [4, 5, 6, 7]  # type: ignore[union-attr]
    assert len(buffer) == 0


def test_taking_notices_lets_coalesced_ones_in() -> None:
    buffer = Buffer(4, "block")
    for n in range(MAX_NOTICES + 3):
        buffer.put_notice(DecodeError(f"bad {n}"))
    assert buffer.notices == MAX_NOTICES and buffer.coalesced == 3
    batch = buffer.take(MAX_NOTICES)
    assert batch is not None and len(batch) == MAX_NOTICES
    tail = buffer.take(64)
    assert tail is not None and len(tail) == 1 and isinstance(tail[0], ErrorsCoalesced)
    assert buffer.notices == 0


class _Tracked:
    """A value whose lifetime a weakref can watch (dicts cannot be weakly referenced)."""


def test_delivered_records_are_freed_soon_even_when_no_more_come() -> None:
    """Delivered batches wait for the wire thread's next put to free them, but not forever."""
    import weakref

    from helpers.server import wait_until

    from ekws.buffer import FREE_WAIT
    from ekws.subscription import Subscription

    values = [_Tracked() for _ in range(10)]
    refs = [weakref.ref(v) for v in values]
    got = threading.Event()
    sub = Subscription("s", lambda m: got.set())
    sub.start()
    sub.offer([Message({"v": v}, PEER, 0) for v in values])
    del values
    assert got.wait(5) and wait_until(lambda: sub.delivered == 10)
    assert wait_until(lambda: all(r() is None for r in refs), timeout=FREE_WAIT + 5)
    sub.close()


def test_the_wire_threads_next_put_frees_what_was_delivered() -> None:
    import weakref

    buffer = Buffer(8, "block")
    value = _Tracked()
    ref = weakref.ref(value)
    buffer.put_batch([Message({"v": value}, PEER, 0), msg(1)])
    del value
    done: list[list[Item]] = []
    batch = buffer.take(1, done)
    assert batch is not None
    done.append(batch)
    del batch
    assert buffer.take(1, done) is not None  # msg(1); the first batch now waits in the buffer
    assert ref() is not None
    buffer.put_batch([msg(2)])  # the wire thread's put drops it
    assert ref() is None
