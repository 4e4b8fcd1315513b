"""The window of what a stream sent and the cloud has not confirmed: table tests of the pure part."""

from __future__ import annotations

from edge.uplink.window import MAX_WAIT_FACTOR, Window


def test_receipts_confirm_ranges_in_any_order_and_partly():
    window = Window(limit=1000, first_wait=10)
    window.sent(1, 500, at=0)
    window.sent(501, 1000, at=1)
    assert window.messages == 1000 and not window.has_room()
    assert window.confirmed(501, 1000) == 500             # a later batch first (another cloud instance)
    assert window.ranges == [(1, 500, 0)] and window.has_room()
    assert window.confirmed(100, 199) == 100               # a receipt for a resent batch cut differently
    assert window.ranges == [(1, 99, 0), (200, 500, 0)]
    assert window.confirmed(600, 700) == 0                 # already confirmed: nothing
    assert window.confirmed(1, 500) == 400 and window.oldest() is None


def test_an_overdue_receipt_starts_again_one_batch_at_a_time_with_a_growing_wait():
    window = Window(limit=4000, first_wait=10)
    window.sent(1, 500, at=0)
    window.sent(501, 900, at=5)
    assert not window.expired(9.9)
    assert window.time_left(4) == 6
    assert window.expired(10)
    assert window.ranges == [] and window.probing and window.wait == 20
    window.sent(1, 500, at=10)
    assert not window.has_room()                           # probing: one batch until the cloud answers
    assert not window.expired(29) and window.expired(30) and window.wait == 40
    for n in range(10):
        window.sent(1, 500, at=100 * n)
        window.expired(100 * n + 10_000)
    assert window.wait == 10 * MAX_WAIT_FACTOR             # bounded
    window.progress()
    assert not window.probing and window.wait == 10 and window.has_room()


def test_a_refused_batch_goes_again_from_the_oldest_one_message_at_a_time():
    window = Window(limit=4000, first_wait=10)
    window.sent(1, 500, at=0)
    window.sent(501, 800, at=1)
    window.expired(100)                                    # probing, with a longer wait
    window.refused(1, 500)
    assert window.take_restart() and not window.take_restart()
    assert window.ranges == [] and not window.probing and window.wait == 10   # the cloud is there
    assert [window.batch_size(after, 500) for after in (0, 499, 500, 800)] == [1, 1, 500, 500]
