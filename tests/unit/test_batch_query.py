"""What a batch list asks for: dates as people write them, filters, reversal, job filters."""

from datetime import UTC, datetime, timedelta

import pytest

from batchdesk.domain.batch_query import (
    BatchQuery,
    JobFilter,
    SortOrder,
    parse_moment,
    text_matches,
)
from batchdesk.domain.statuses import BatchStatus, JobStatus
from batchdesk.errors import InvalidRequest


def test_a_date_means_local_midnight_and_until_a_date_takes_in_all_of_that_day() -> None:
    start = parse_moment("2026-11-28")
    end = parse_moment("2026-11-28", end_of_day=True)

    assert start.tzinfo is not None
    assert (start.year, start.month, start.day, start.hour, start.minute) == (2026, 11, 28, 0, 0)
    assert end.date().isoformat() == "2026-11-29"
    assert end.hour == 0
    assert end - start in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))


def test_a_moment_may_carry_a_time_and_a_zone() -> None:
    assert parse_moment("2026-11-28T14:30+00:00") == datetime(2026, 11, 28, 14, 30, tzinfo=UTC)
    local = parse_moment("2026-11-28T14:30")
    assert local.tzinfo is not None
    assert (local.hour, local.minute) == (14, 30)


@pytest.mark.parametrize("text", ["yesterday", "28/11/2026", "", "2026-13-01"])
def test_a_date_that_cannot_be_read_is_a_sentence_with_an_example(text: str) -> None:
    with pytest.raises(InvalidRequest, match="write it as 2026-11-28"):
        parse_moment(text)


def test_any_filter_makes_a_query_filtered_and_the_sort_stays_when_filters_change() -> None:
    assert not BatchQuery().filtered
    for filters in (
        {"statuses": frozenset({BatchStatus.FAILED})},
        {"customer_prefix": "PL_DXB"},
        {"text": "view"},
        {"created_by": "ann@ws"},
        {"pipeline": "original"},
        {"created_from": datetime(2026, 11, 1, tzinfo=UTC)},
        {"created_before": datetime(2026, 11, 1, tzinfo=UTC)},
    ):
        filtered = BatchQuery(**filters)  # type: ignore[arg-type]
        assert filtered.filtered
        sorted_query = BatchQuery(sort_by="total_size", order=SortOrder.ASC, limit=5)
        combined = sorted_query.with_filters_of(filtered)
        assert combined == BatchQuery(
            **filters,  # type: ignore[arg-type]
            sort_by="total_size",
            order=SortOrder.ASC,
            limit=5,
        )


def test_a_reversed_query_flips_only_the_order() -> None:
    query = BatchQuery(text="x", sort_by="status", order=SortOrder.DESC, limit=7)
    assert query.reversed() == BatchQuery(text="x", sort_by="status", order=SortOrder.ASC, limit=7)
    assert query.reversed().reversed() == query


def test_a_moment_without_a_zone_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="time zone"):
        BatchQuery(created_from=datetime(2026, 11, 28))


def test_job_filters_name_the_statuses_they_show() -> None:
    assert JobFilter.ALL.statuses == frozenset(JobStatus)
    assert JobFilter.FAILED.statuses == {JobStatus.FAILED}
    assert JobStatus.COMPLETED not in JobFilter.NOT_COMPLETED.statuses
    assert len(JobFilter.NOT_COMPLETED.statuses) == 4


def test_text_matches_ignores_case_and_an_empty_search_matches_nothing() -> None:
    assert text_matches("VIEW2", "PL_DXB193_view2.png")
    assert not text_matches("view3", "PL_DXB193_view2.png")
    assert not text_matches("", "anything")
    assert not text_matches(None, "anything")
