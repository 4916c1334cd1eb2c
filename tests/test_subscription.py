"""The subscription buffer and worker: overflow policies, order, close."""

import threading
import time

import pytest
from helpers.server import wait_until

from ekws.errors import CallbackError, DecodeError
from ekws.message import Encoded, Message, Peer, Status
from ekws.subscription import Buffer, Subscription

PEER = Peer("s", "/", "127.0.0.1:1", 1)


def messages(start, stop):
    return [Message({"n": n}, PEER, 0) for n in range(start, stop)]


def drain(buffer):
    out = []
    buffer.close()
    while (item := buffer.get()) is not None:
        out.append(item.data["n"] if isinstance(item, Message) else item)
    return out


def test_drop_newest_keeps_the_head_and_counts_the_rest():
    buffer = Buffer(5, "dropNewest")
    buffer.put_batch(messages(0, 3))
    buffer.put_batch(messages(3, 10))
    assert buffer.dropped == 5
    assert drain(buffer) == [0, 1, 2, 3, 4]


def test_drop_oldest_keeps_the_tail_and_counts_the_rest():
    buffer = Buffer(5, "dropOldest")
    buffer.put_batch(messages(0, 3))
    buffer.put_batch(messages(3, 6))
    assert buffer.dropped == 1
    buffer.put_batch(messages(6, 20))
    assert buffer.dropped == 15
    assert drain(buffer) == [15, 16, 17, 18, 19]


def test_drop_oldest_never_drops_notices():
    buffer = Buffer(2, "dropOldest")
    status = Status("s", "connected", 0.0)
    buffer.put_notice(status)
    buffer.put_batch(messages(0, 5))
    assert drain(buffer) == [status, 3, 4]
    assert buffer.dropped == 3


def test_block_waits_for_room_and_loses_nothing():
    buffer = Buffer(3, "block")
    done = threading.Event()

    def produce():
        buffer.put_batch(messages(0, 10))
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    while len(got) < 10:
        item = buffer.get()
        assert len(buffer) <= 3
        got.append(item.data["n"])
    assert done.wait(5)
    producer.join(5)
    assert got == list(range(10)) and buffer.dropped == 0


def test_close_releases_a_blocked_producer():
    buffer = Buffer(1, "block")
    buffer.put_batch(messages(0, 1))
    producer = threading.Thread(target=buffer.put_batch, args=(messages(1, 3),))
    producer.start()
    buffer.close()
    producer.join(5)
    assert not producer.is_alive()


@pytest.mark.parametrize("bad", [dict(capacity=0, overflow="block"), dict(capacity=1, overflow="drop")])
def test_buffer_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        Buffer(**bad)


def test_worker_delivers_in_order_survives_raising_callbacks_and_drains_on_close():
    got, errors, statuses = [], [], []
    first = threading.Event()
    release = threading.Event()

    def on_message(msg):
        first.set()
        release.wait(5)
        if msg.data["n"] == 2:
            raise RuntimeError("boom")
        got.append(msg.data["n"])

    sub = Subscription("s", on_message, errors.append, statuses.append, buffer_length=100)
    sub.start()
    sub.offer(messages(0, 5))
    sub.notify(DecodeError("bad"))
    sub.notify(Status("s", "connected", 0.0))
    assert first.wait(5)
    release.set()
    sub.close()
    sub.close()  # idempotent
    assert got == [0, 1, 3, 4]
    assert sub.delivered == 4 and sub.failed == 1
    assert "boom" in sub.last_exception
    failure, decode = errors
    assert isinstance(failure, CallbackError) and failure.callback == "on_message"
    assert failure.item.data == {"n": 2} and str(failure.__cause__) == "boom"
    assert str(decode) == "bad" and statuses[0].state == "connected"
    assert sub.finished


def test_close_returns_in_bounded_time_when_a_callback_hangs():
    hang = threading.Event()
    entered = threading.Event()

    def on_message(msg):
        entered.set()
        hang.wait(10)

    sub = Subscription("s", on_message, drain_timeout=0.2)
    sub.start()
    sub.offer(messages(0, 2))
    assert entered.wait(5)
    started = time.monotonic()
    sub.close()
    took = time.monotonic() - started
    try:
        assert 0.15 <= took < 2.0, took  # waited for the drain, then gave up
        assert sub.closed and not sub.finished  # the callback still runs
    finally:
        hang.set()
    assert wait_until(lambda: sub.finished, 5)
    assert sub.delivered == 2  # what was buffered was still delivered, once the callback returned


def test_a_decoder_that_raises_is_reported_and_the_worker_goes_on(caplog):
    # Bad input is a DecodeError the stream reports; anything else from the
    # decoder is a bug, which must not end the subscription's worker.
    def decode(item):
        if item.payload == "boom":
            raise KeyError("a bug")
        return [Message({"n": item.payload}, item.peer, item.timestamp)]

    got = []
    errors = []
    sub = Subscription("s", got.append, errors.append, decode=decode)
    assert sub.decodes
    sub.start()
    sub.offer_encoded([Encoded(p, PEER, 0) for p in ("1", "boom", "2")])
    assert wait_until(lambda: len(got) == 2, 5)
    sub.close()
    assert [m.data for m in got] == [{"n": "1"}, {"n": "2"}]
    assert sub.failed == 1 and "a bug" in (sub.last_exception or "")
    assert "the decoder" in caplog.text
