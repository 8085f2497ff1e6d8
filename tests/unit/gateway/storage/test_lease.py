"""The re-embedding job lease's policy: tables of times in, decisions out (no database, no sleeps)."""

from __future__ import annotations

import pytest

from gateway.storage.engine import CANCELLED, DONE, FAILED, RUNNING
from gateway.storage.lease import Lease, LeasePolicy

POLICY = LeasePolicy(lease_s=12.0)  # renews every 4 s, scans every 6 s


def granted(at: float) -> Lease:
    return Lease("gw-a", 1, POLICY.expiry(at))


def test_cadence_follows_the_lease() -> None:
    assert (POLICY.renew_every_s, POLICY.scan_every_s) == (4.0, 6.0)
    # A holder dead right after its last renewal is found lapsed by a scan within 1.5 leases: under two.
    assert POLICY.lease_s + POLICY.scan_every_s < 2 * POLICY.lease_s


@pytest.mark.parametrize("lease_s", [0.0, -1.0])
def test_a_lease_must_last(lease_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        LeasePolicy(lease_s)


@pytest.mark.parametrize(
    ("granted_at", "now", "due"),
    [
        (100.0, 100.0, False),  # just granted
        (100.0, 103.9, False),
        (100.0, 104.0, True),  # a third of the lease gone
        (100.0, 111.0, True),  # late, still held
        (100.0, 130.0, True),  # lapsed: renewing is still the way to find out
    ],
)
def test_renew_due(granted_at: float, now: float, due: bool) -> None:
    assert POLICY.renew_due(granted(granted_at), now) is due


@pytest.mark.parametrize(
    ("granted_at", "now", "stop"),
    [
        (100.0, 100.0, False),
        (100.0, 111.9, False),
        (100.0, 112.0, True),  # lapsed unrenewed: another gateway may hold it by now
        (100.0, 200.0, True),
    ],
)
def test_must_stop(granted_at: float, now: float, stop: bool) -> None:
    assert POLICY.must_stop(granted(granted_at), now) is stop


@pytest.mark.parametrize(
    ("state", "expires_at", "now", "claimable"),
    [
        (RUNNING, 112.0, 111.0, False),  # its holder renews it
        (RUNNING, 112.0, 112.0, True),  # lapsed
        (RUNNING, 112.0, 500.0, True),
        (RUNNING, None, 0.0, True),  # released at a clean stop
        (DONE, 50.0, 500.0, False),  # ended jobs are nobody's to take
        (CANCELLED, None, 500.0, False),
        (FAILED, 50.0, 500.0, False),
    ],
)
def test_claimable(state: str, expires_at: float | None, now: float, claimable: bool) -> None:
    assert POLICY.claimable(state, expires_at, now) is claimable
