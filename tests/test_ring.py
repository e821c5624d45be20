"""The bounded ring: capacity, drop-oldest counting, blocking mode, timeouts, close, concurrency."""

from __future__ import annotations

import threading
import time

import pytest

from realtime.ring import Ring, RingClosed


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Ring(capacity=0)
    assert Ring(capacity=1).capacity == 1


def test_live_put_drops_the_oldest_and_counts_it() -> None:
    ring: Ring[int] = Ring(capacity=3)
    dropped = [ring.put(i) for i in range(7)]
    assert dropped == [None, None, None, 0, 1, 2, 3]
    assert ring.dropped == 4 and ring.put_count == 7
    assert len(ring) == 3
    assert [ring.get(0) for _ in range(3)] == [4, 5, 6]


def test_capacity_one_keeps_only_the_newest() -> None:
    ring: Ring[int] = Ring(capacity=1)
    for i in range(5):
        ring.put(i)
    assert ring.get(0) == 4 and ring.dropped == 4


def test_get_times_out_with_none() -> None:
    ring: Ring[int] = Ring(capacity=2)
    start = time.perf_counter()
    assert ring.get(0.1) is None
    assert 0.09 <= time.perf_counter() - start < 1.0


def test_get_wakes_when_an_item_arrives() -> None:
    ring: Ring[int] = Ring(capacity=2)
    threading.Timer(0.05, ring.put, args=(42,)).start()
    start = time.perf_counter()
    assert ring.get(5.0) == 42
    assert time.perf_counter() - start < 1.0


def test_blocking_put_waits_for_room_and_drops_nothing() -> None:
    ring: Ring[int] = Ring(capacity=1, blocking=True)
    ring.put(1)
    with pytest.raises(TimeoutError):
        ring.put(2, timeout=0.05)
    threading.Timer(0.05, ring.get, args=(1.0,)).start()
    ring.put(3, timeout=5.0)
    assert ring.get(0) == 3
    assert ring.dropped == 0


def test_close_wakes_every_waiter() -> None:
    """Getters blocked on an empty ring and putters blocked on a full one all return on close."""
    empty: Ring[int] = Ring(capacity=1)
    full: Ring[int] = Ring(capacity=1, blocking=True)
    full.put(0)
    outcomes: list[str] = []

    def getter() -> None:
        try:
            empty.get(None)
        except RingClosed:
            outcomes.append("get")

    def putter() -> None:
        try:
            full.put(1, timeout=None)
        except RingClosed:
            outcomes.append("put")

    threads = [threading.Thread(target=getter) for _ in range(3)] + [threading.Thread(target=putter) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    empty.close()
    full.close()
    for thread in threads:
        thread.join(2.0)
    assert not any(t.is_alive() for t in threads)
    assert sorted(outcomes) == ["get"] * 3 + ["put"] * 3


def test_closed_ring_drains_then_raises() -> None:
    ring: Ring[int] = Ring(capacity=3)
    ring.put(1)
    ring.put(2)
    ring.close()
    with pytest.raises(RingClosed):
        ring.put(3)
    assert ring.get(0) == 1 and ring.get(0) == 2
    with pytest.raises(RingClosed):
        ring.get(0)


def test_unbounded_ring_never_drops() -> None:
    ring: Ring[int] = Ring(capacity=None)
    for i in range(10_000):
        ring.put(i)
    assert ring.dropped == 0 and len(ring) == 10_000


def _produce(ring: Ring[tuple[int, int]], producer: int, count: int) -> None:
    for i in range(count):
        ring.put((producer, i))


def _consume(ring: Ring[tuple[int, int]], received: list[tuple[int, int]], *, pause_every: int = 0) -> None:
    """Read until the ring is closed; with ``pause_every`` sleep briefly after that many items."""
    while True:
        try:
            item = ring.get(1.0)
        except RingClosed:
            return
        if item is not None:
            received.append(item)
            if pause_every and len(received) % pause_every == 0:
                time.sleep(0.0005)


def test_concurrent_live_producers_lose_only_counted_items() -> None:
    """Several producers, one slowish consumer: per-producer order kept, no duplicates, losses == drops."""
    ring: Ring[tuple[int, int]] = Ring(capacity=4)
    producers, per_producer = 4, 5000
    received: list[tuple[int, int]] = []

    # Slower than the producers: forces drops.
    consumer = threading.Thread(target=_consume, args=(ring, received), kwargs={"pause_every": 64})
    consumer.start()
    workers = [threading.Thread(target=_produce, args=(ring, p, per_producer)) for p in range(producers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ring.close()
    consumer.join(10.0)

    assert len(set(received)) == len(received), "an item was delivered twice"
    for p in range(producers):
        mine = [i for q, i in received if q == p]
        assert mine == sorted(mine), f"producer {p}'s items came out of order"
    assert ring.dropped > 0, "the consumer kept up: the test did not exercise dropping"
    assert len(received) + ring.dropped == producers * per_producer
    assert ring.put_count == producers * per_producer


def test_concurrent_blocking_mode_delivers_everything_in_order() -> None:
    ring: Ring[tuple[int, int]] = Ring(capacity=2, blocking=True)
    count = 20_000
    received: list[tuple[int, int]] = []

    consumer = threading.Thread(target=_consume, args=(ring, received))
    consumer.start()
    _produce(ring, 0, count)
    ring.close()
    consumer.join(10.0)
    assert received == [(0, i) for i in range(count)]
    assert ring.dropped == 0
