"""The spool on local disk that keeps residents' messages while the database is away (router/spool.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.spool import HEADER, Spool, SpoolFull

MEGABYTE = 1024 * 1024


def records(spool: Spool) -> list[dict]:
    return [record for _, record in spool.read(10_000)]


def test_records_come_back_in_order_after_reopening_and_replayed_ones_do_not(tmp_path: Path) -> None:
    spool = Spool.claim(tmp_path, MEGABYTE)
    for n in range(5):
        spool.append({"n": n, "text": f"第{n}条"})
    assert not spool.empty
    read = spool.read(3)
    assert [r["n"] for _, r in read] == [0, 1, 2]
    spool.advance(read[1][0])  # the first two were stored
    spool.close()

    again = Spool.claim(tmp_path, MEGABYTE)
    assert again.directory == spool.directory
    assert [r["n"] for r in records(again)] == [2, 3, 4]
    again.advance(again.read(10)[-1][0])
    assert again.empty and again.size_bytes == 0
    again.close()
    assert Spool.claim(tmp_path, MEGABYTE).empty


def test_segments_roll_over_and_are_deleted_once_replayed(tmp_path: Path) -> None:
    spool = Spool.claim(tmp_path, MEGABYTE, segment_bytes=200)
    for n in range(20):
        spool.append({"n": n, "text": "水管漏水" * 5})
    segments = sorted(spool.directory.glob("*.seg"))
    assert len(segments) > 3
    read = spool.read(15)
    assert [r["n"] for _, r in read] == list(range(15))
    spool.advance(read[-1][0])
    assert len(sorted(spool.directory.glob("*.seg"))) < len(segments)
    assert [r["n"] for r in records(spool)] == list(range(15, 20))
    spool.close()
    assert [r["n"] for r in records(Spool.claim(tmp_path, MEGABYTE, segment_bytes=200))] == list(range(15, 20))


def test_a_record_cut_short_by_a_crash_is_dropped_and_the_spool_goes_on(tmp_path: Path) -> None:
    spool = Spool.claim(tmp_path, MEGABYTE)
    spool.append({"n": 0})
    spool.append({"n": 1})
    spool.close()
    segment = next(spool.directory.glob("*.seg"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + HEADER.pack(100, 0) + b'{"n": 2')  # the crash came in the middle of a write

    reopened = Spool.claim(tmp_path, MEGABYTE)
    assert segment.read_bytes() == whole
    reopened.append({"n": 3})
    assert [r["n"] for r in records(reopened)] == [0, 1, 3]


def test_a_full_spool_refuses_more(tmp_path: Path) -> None:
    spool = Spool.claim(tmp_path, 200)
    spool.append({"text": "x" * 100})
    with pytest.raises(SpoolFull):
        spool.append({"text": "y" * 100})
    spool.advance(spool.read(1)[0][0])  # replayed: room again
    spool.append({"text": "y" * 100})


def test_each_process_claims_a_spool_directory_of_its_own(tmp_path: Path) -> None:
    first = Spool.claim(tmp_path, MEGABYTE)
    second = Spool.claim(tmp_path, MEGABYTE)
    assert first.directory != second.directory
    first.append({"from": "first"})
    second.append({"from": "second"})
    first.close()
    third = Spool.claim(tmp_path, MEGABYTE)  # the first process is gone: what it left is taken over
    assert third.directory == first.directory
    assert records(third) == [{"from": "first"}]
