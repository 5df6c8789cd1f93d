"""Attack class: any role that can connect may NOTIFY the feed's channel (issue 22's Follower).

`feed.Follower` wakes up on notifications but never trusts their payload: it reads the changes
from `status_change` with its own privileges and skips every seq it already yielded. A reader
login (it may read no table) forges notifications: seqs already delivered, a seq not yet
committed by anyone, junk; and the follower yields each committed change once, nothing else.
Without the seen-set (a follower that yields whatever a payload names), the replay of a
delivered seq comes out twice: `test_forged_notifications_yield_nothing_twice` failed so.
"""

from __future__ import annotations

import psycopg
from factories import READER_LOGIN, new_page
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, feed, teams

Conn = psycopg.Connection[TupleRow]


def test_forged_notifications_yield_nothing_twice(dsn: str, logins: None) -> None:
    with psycopg.connect(dsn) as setup:
        team = teams.create(setup, name="SRE")
        page = new_page(setup, team.id, slug="s32-forged").id
        comp = components.create(setup, page, name="API").id
        setup.commit()
    follower = feed.Follower(dsn, since=None, reconnect_delay=0.05)
    try:
        assert list(follower.changes(timeout=0.1)) == []
        with psycopg.connect(dsn) as writer:
            components.set_status(writer, comp, "MAJOR_OUTAGE")
            writer.commit()
        first = list(follower.changes(timeout=1.0))
        assert len(first) == 1
        seq = first[0].seq
        with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as forger:
            for payload in (str(seq), str(seq), str(seq + 1000), "junk", "-1", "9" * 30):
                forger.execute("SELECT pg_notify(%s, %s)", (feed.CHANNEL, payload))
        assert list(follower.changes(timeout=0.5)) == []  # nothing twice, nothing made up
        with psycopg.connect(dsn) as writer:
            components.set_status(writer, comp, "OPERATIONAL")
            writer.commit()
        after = list(follower.changes(timeout=1.0))
        assert [c.event.new_status for c in after] == ["OPERATIONAL"]
        assert after[0].seq > seq
    finally:
        follower.close()
