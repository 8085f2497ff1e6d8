"""The re-embedding job lease as a plain object: when to renew, when a holder must stop, when to take over.

Several gateways share one database; a job is run by the one gateway holding its lease. The lease is a
row (`akidb_jobs`: holder, expiry, fence) the engine reads and writes; this module only decides, from
times it is given, so its tests are tables. Times are the database's clock (`clock_timestamp()`), read
back with every grant and renewal, so gateways whose own clocks disagree still agree on expiry.

The fence (a number that moves on at each take-over) is what makes a stale holder harmless: every write
a holder makes names its fence, and the database refuses it once another gateway has taken the job.
`must_stop` is only politeness on top: a holder that could not renew in time stops embedding work that
would be refused anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.storage.engine import RUNNING


@dataclass(frozen=True)
class Lease:
    """A lease as granted: who holds the job, its fence, and when it lapses (database clock)."""

    holder: str
    fence: int
    expires_at: float


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts and the cadence of renewals and take-over scans derived from it."""

    lease_s: float

    def __post_init__(self) -> None:
        if self.lease_s <= 0:
            raise ValueError(f"a job lease must last a positive time, not {self.lease_s}")

    @property
    def renew_every_s(self) -> float:
        # A third: two renewals can fail (a slow statement, a blip) before the lease lapses.
        return self.lease_s / 3

    @property
    def scan_every_s(self) -> float:
        # Half: a lapsed lease is found within lease_s * 1.5 of its holder's last renewal, so a
        # take-over happens within two leases of a holder's death.
        return self.lease_s / 2

    def renew_due(self, lease: Lease, now: float) -> bool:
        """Whether the holder should renew now (it renews when a third of the lease has passed)."""
        return now >= lease.expires_at - self.lease_s + self.renew_every_s

    def must_stop(self, lease: Lease, now: float) -> bool:
        """Whether a holder that has not renewed must consider the job lost (its lease lapsed)."""
        return now >= lease.expires_at

    def claimable(self, state: str, expires_at: float | None, now: float) -> bool:
        """Whether another gateway may take the job over: it runs and its lease lapsed (or was never granted)."""
        return state == RUNNING and (expires_at is None or expires_at <= now)

    def expiry(self, now: float) -> float:
        """The expiry of a lease granted or renewed at `now`."""
        return now + self.lease_s
