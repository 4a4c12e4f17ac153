"""What a list of batches asks for: filters, a sort column from a fixed list, and a page.

Sort columns are names from `SORT_COLUMNS`, never SQL text: storage maps each name to a column,
so nothing a user types reaches SQL except as a bound value.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from batchdesk.domain.statuses import BatchStatus, JobStatus
from batchdesk.errors import InvalidRequest

# The columns a list can be sorted by, as the user names them (the table's own column names).
SORT_COLUMNS = (
    "created_at",
    "updated_at",
    "completed_at",
    "base_directory_name",
    "customer_prefix",
    "batch_date",
    "render_description",
    "status",
    "total_files",
    "total_size",
    "created_by",
    "pipeline",
    "priority",
    "progress",
)
MAX_PAGE_SIZE = 10_000


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


def parse_sort_column(name: str) -> str:
    """Return `name` if batches can be sorted by it; else raise InvalidRequest with the choices."""
    if name not in SORT_COLUMNS:
        raise InvalidRequest(
            f"Cannot sort batches by {name!r}: choose one of {', '.join(SORT_COLUMNS)}."
        )
    return name


def parse_sort_order(order: str) -> SortOrder:
    try:
        return SortOrder(order.lower())
    except ValueError:
        raise InvalidRequest(f"Sort order must be asc or desc, not {order!r}.") from None


def parse_statuses(names: list[str] | tuple[str, ...]) -> frozenset[BatchStatus]:
    statuses = set()
    for name in names:
        try:
            statuses.add(BatchStatus(name.lower()))
        except ValueError:
            choices = ", ".join(s.value for s in BatchStatus)
            raise InvalidRequest(
                f"Unknown batch status {name!r}: choose one of {choices}."
            ) from None
    return frozenset(statuses)


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """Return the moment a user means by `text`: a date (YYYY-MM-DD) or an ISO date and time.

    A date alone is local midnight at its start, or with `end_of_day` at the start of the next
    day (so "until 2026-11-28" takes in all of that day); a time without a zone is local.
    """
    value = text.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time()).astimezone()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"Cannot read {text!r} as a date: write it as 2026-11-28 or 2026-11-28T14:30."
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


@dataclass(frozen=True)
class BatchQuery:
    """A page of batches: which ones, in which order.

    Every filter narrows the list; an empty or None filter is no filter. `text` is matched
    case-insensitively in the batch's name, its description and its jobs' file names.
    `created_from` is inclusive and `created_before` exclusive. `finished_from` keeps the batches
    that finished (completed, failed or cancelled) at or after that moment, whenever created.
    """

    statuses: frozenset[BatchStatus] = field(default_factory=frozenset)
    customer_prefix: str | None = None
    text: str | None = None
    created_by: str | None = None
    pipeline: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    finished_from: datetime | None = None
    sort_by: str = "created_at"
    order: SortOrder = SortOrder.DESC
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        parse_sort_column(self.sort_by)
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"A page holds 1 to {MAX_PAGE_SIZE} batches, not {self.limit}.")
        for name, value in (
            ("customer", self.customer_prefix),
            ("text", self.text),
            ("created-by", self.created_by),
            ("pipeline", self.pipeline),
        ):
            if value and "\x00" in value:
                raise InvalidRequest(f"The {name} filter contains a NUL character.")
        for name, moment in (
            ("from", self.created_from),
            ("until", self.created_before),
            ("finished-from", self.finished_from),
        ):
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"the {name} moment must carry a time zone")  # a caller's bug
        if self.offset < 0:
            raise InvalidRequest(f"A page cannot start before the first batch ({self.offset}).")

    @property
    def filtered(self) -> bool:
        """True when any filter narrows the list."""
        return bool(
            self.statuses
            or self.customer_prefix
            or self.text
            or self.created_by
            or self.pipeline
            or self.created_from
            or self.created_before
            or self.finished_from
        )

    def with_filters_of(self, other: "BatchQuery") -> "BatchQuery":
        """Return this query (its sort and page) with the filters of `other`."""
        return replace(
            self,
            statuses=other.statuses,
            customer_prefix=other.customer_prefix,
            text=other.text,
            created_by=other.created_by,
            pipeline=other.pipeline,
            created_from=other.created_from,
            created_before=other.created_before,
            finished_from=other.finished_from,
        )

    def reversed(self) -> "BatchQuery":
        """The same batches in exactly the opposite order (ties too: they break by id)."""
        flipped = SortOrder.ASC if self.order is SortOrder.DESC else SortOrder.DESC
        return replace(self, order=flipped)


def text_matches(text: str | None, value: str) -> bool:
    """True when a search `text` matches `value` as the batch search does (case-insensitive)."""
    return text is not None and text != "" and text.lower() in value.lower()


# The jobs an expanded batch shows: all of them, or those that still need someone's attention.
class JobFilter(StrEnum):
    ALL = "all"
    FAILED = "failed"
    NOT_COMPLETED = "not-completed"

    @property
    def statuses(self) -> frozenset[JobStatus]:
        """The job statuses shown; every one for ALL."""
        if self is JobFilter.FAILED:
            return frozenset({JobStatus.FAILED})
        if self is JobFilter.NOT_COMPLETED:
            return frozenset(JobStatus) - {JobStatus.COMPLETED}
        return frozenset(JobStatus)
