"""What a list of batches asks for: filters, a sort column from a fixed list, and a page.

Sort columns are names from `SORT_COLUMNS`, never SQL text: storage maps each name to a column,
so nothing a user types reaches SQL except as a bound value.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from batchdesk.domain.statuses import BatchStatus
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


@dataclass(frozen=True)
class BatchQuery:
    """A page of batches: which ones, in which order."""

    statuses: frozenset[BatchStatus] = field(default_factory=frozenset)
    customer_prefix: str | None = None
    text: str | None = None  # matched case-insensitively in the name and the description
    sort_by: str = "created_at"
    order: SortOrder = SortOrder.DESC
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        parse_sort_column(self.sort_by)
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"A page holds 1 to {MAX_PAGE_SIZE} batches, not {self.limit}.")
        for name, value in (("customer", self.customer_prefix), ("text", self.text)):
            if value and "\x00" in value:
                raise InvalidRequest(f"The {name} filter contains a NUL character.")
        if self.offset < 0:
            raise InvalidRequest(f"A page cannot start before the first batch ({self.offset}).")
