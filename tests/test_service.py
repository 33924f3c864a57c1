"""app/service.py: the generation queue shared by the chat and the endpoint, and engines per report."""

import threading
import time

import pytest

from reportqa.app.service import Busy, Service, TurnQueue


def test_turns_are_taken_one_at_a_time_in_the_order_asked():
    q, order, inside, overlap = TurnQueue(max_waiting=8), [], [0], []
    first = threading.Event()

    def worker(i):
        with q.turn():
            inside[0] += 1
            overlap.append(inside[0])
            if i == 0:
                first.set()
                time.sleep(0.2)  # the others queue up meanwhile, in the order they were started
            order.append(i)
            inside[0] -= 1

    threads = [threading.Thread(target=worker, args=(0,))]
    threads[0].start()
    first.wait(5)
    for i in range(1, 5):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        while q.waiting < i:  # make sure thread i is queued before i+1 asks
            time.sleep(0.005)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert max(overlap) == 1


def test_a_full_queue_says_busy_and_a_failed_turn_frees_the_queue():
    q = TurnQueue(max_waiting=1)
    release, held = threading.Event(), threading.Event()

    def hold():
        with q.turn():
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    waiter = threading.Thread(target=lambda: q.turn().__enter__())  # one waits: the queue is now full
    waiter.start()
    while q.waiting < 1:
        time.sleep(0.005)
    with pytest.raises(Busy), q.turn():
        pass
    release.set()
    holder.join(5)
    waiter.join(5)


def test_an_exception_inside_a_turn_releases_it():
    q = TurnQueue(max_waiting=2)
    with pytest.raises(ValueError), q.turn():
        raise ValueError("boom")
    with q.turn():  # would block forever if the failed turn had kept it
        pass


def test_engines_are_per_report_and_the_given_one_serves_the_default(settings):
    sentinel = object()
    service = Service(settings, engine=sentinel)
    assert service.engine() is sentinel and service.engine(service.default) is sentinel
    from reportqa.index.library import UnknownReport

    with pytest.raises(UnknownReport):
        service.engine("no-such-report")
