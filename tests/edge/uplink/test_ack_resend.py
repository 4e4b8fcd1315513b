"""An ack is sent again until the cloud confirms it (AckReceipt on down/acked): the broker hands an
ack to one cloud instance, which may die before storing it (issue 18)."""

from __future__ import annotations

import uuid

import pytest

from contract.v1 import AckReceipt, Down, acked_topic, encode
from edge.uplink import service
from tests.edge.uplink.conftest import SITE, eventually

AUTH = {"default_policy": "all-known", "user_groups": [{"id": "residents"}], "charge_groups": [],
        "tokens": [{"id_tag": "CLOUD-1", "user_group": "residents"}]}


@pytest.fixture(autouse=True)
def quick_resend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "ACK_RESEND", (0.2, 0.4))


def acks_of(cloud, push_id: str) -> list[dict]:
    return [a for a in cloud.acks() if a["id"] == push_id]


async def test_an_ack_goes_again_until_the_cloud_confirms_it(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="the uplink")
        push = Down(site=SITE, kind="auth", id=f"auth-{uuid.uuid4().hex[:8]}", version=1, document=AUTH)
        cloud.send(push)
        # Nobody confirms (the instance that got it died): the same answer comes again, and again.
        await eventually(lambda: len(acks_of(cloud, push.id)) >= 3, what="the ack sent three times")
        assert {a["status"] for a in acks_of(cloud, push.id)} == {"applied"}
        assert edge.authorizer.model.find("CLOUD-1") is not None          # applied once, answered thrice
        # Another site's confirmation, or one for another answer, changes nothing.
        cloud.send_raw(acked_topic(SITE), encode(AckReceipt(site=SITE, kind="auth", id=push.id, status="rejected")))
        cloud.send_raw(acked_topic(SITE), encode(AckReceipt(site=SITE, kind="auth", id="other", status="applied")))
        # The cloud has stored it: the edge stops.
        cloud.send_raw(acked_topic(SITE), encode(AckReceipt(site=SITE, kind="auth", id=push.id, status="applied")))
        await eventually(lambda: not edge.uplink.unconfirmed_acks, what="the ack confirmed")
        assert edge.uplink.acks_resent >= 2


async def test_acks_are_not_kept_beyond_their_attempts(make_uplinked_edge, cloud, monkeypatch):
    """A cloud from before AckReceipts never confirms: the edge gives up after ACK_ATTEMPTS sends (the
    cloud sends its push again until it has an answer, and the answer is sent again then)."""
    monkeypatch.setattr(service, "ACK_ATTEMPTS", 3)
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="the uplink")
        push = Down(site=SITE, kind="auth", id=f"auth-{uuid.uuid4().hex[:8]}", version=1, document=AUTH)
        cloud.send(push)
        await eventually(lambda: len(acks_of(cloud, push.id)) == 3 and not edge.uplink.unconfirmed_acks,
                         what="three sends, then none kept")
