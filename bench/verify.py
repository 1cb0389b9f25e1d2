"""After a run, read the hub's database: was every message the bench sent stored exactly once?"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bench.hubproc import Database
from bench.scenarios import FIXED_RATE_TAG, OPEN_TAG, REPLY_TAG, THROUGHPUT_TAG, Measured

RESIDENT_TAGS = (OPEN_TAG, THROUGHPUT_TAG, FIXED_RATE_TAG)


@dataclass(frozen=True, slots=True)
class StoreCheck:
    tag: str
    sent: int  # accepted by the hub: sent and not refused with an error frame
    rows: int
    distinct: int
    missing: int  # sent, not stored
    unexpected: int  # stored under the tag, never sent

    @property
    def exact(self) -> bool:
        return self.rows == self.distinct == self.sent and self.missing == 0 and self.unexpected == 0


@dataclass(frozen=True, slots=True)
class Verification:
    checks: list[StoreCheck]
    inbound_rows: int  # every resident message row in the database, tagged or not
    inbound_sent: int  # resident messages the hub accepted
    reply_delivery: dict[str, int]  # delivery state of the stored agent replies

    @property
    def exact(self) -> bool:
        return all(c.exact for c in self.checks) and self.inbound_rows == self.inbound_sent


def _check(tag: str, sent: set[str], stored: list[str]) -> StoreCheck:
    distinct = set(stored)
    return StoreCheck(tag=tag, sent=len(sent), rows=len(stored), distinct=len(distinct),
                      missing=len(sent - distinct), unexpected=len(distinct - sent))


def verify(database: Database, measured: Measured) -> Verification:
    checks = []
    for tag in RESIDENT_TAGS:
        rows = database.rows(f"SELECT channel_message_id FROM message "  # noqa: S608  (tags are constants)
                             f"WHERE channel = 'webchat' AND direction = 'in' AND text LIKE '{tag} %'")
        ledger = measured.ledgers[tag]
        checks.append(_check(tag, set(ledger.sent) - set(ledger.refused), [row[0] for row in rows]))
    replies = database.rows(f"SELECT text, delivery FROM message "  # noqa: S608
                            f"WHERE direction = 'out' AND text LIKE '{REPLY_TAG} %'")
    checks.append(_check(REPLY_TAG, set(measured.ledgers[REPLY_TAG].sent), [row[0] for row in replies]))
    inbound = int(database.rows("SELECT count(*) FROM message WHERE direction = 'in'")[0][0])
    return Verification(
        checks=checks,
        inbound_rows=inbound,
        inbound_sent=sum(checks[i].sent for i in range(len(RESIDENT_TAGS))),
        reply_delivery=dict(Counter(row[1] for row in replies)),
    )
