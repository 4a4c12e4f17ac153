"""Previewing batch names: what the next batch of each customer would be called if submitted now.

The preview reads the same day counters that `submission.allocate_counter` takes numbers from,
and decides "today" with the same `batchdesk_today()` function, so it names exactly what a
submission made at this moment would create. It takes no lock and writes nothing: another
workstation may take the number first, in which case the preview is simply overtaken (the window
previews again when batches change), and the name a batch really gets always comes from `submit`.
"""

from collections.abc import Sequence
from datetime import date

from batchdesk.domain.naming import base_directory_name
from batchdesk.storage.pool import Connection


def preview_names(
    connection: Connection, prefixes: Sequence[str], batch_date: date | None = None
) -> dict[str, str]:
    """Return the name the next batch of each prefix would get on `batch_date` (None: today).

    The result has one entry per distinct prefix, in the order given.
    """
    wanted = list(dict.fromkeys(prefixes))
    if not wanted:
        return {}
    # One statement, so the day and the counters are read from the same snapshot; the outer
    # row of the LEFT JOIN gives the day even when no prefix has a counter yet.
    rows = connection.execute(
        "SELECT d.day, c.customer_prefix, c.last_counter "
        "FROM (SELECT coalesce(%s::date, batchdesk_today()) AS day) AS d "
        "LEFT JOIN batch_day_counters AS c "
        "ON c.batch_date = d.day AND c.customer_prefix = ANY(%s)",
        (batch_date, wanted),
    ).fetchall()
    day: date = rows[0][0]
    last = {prefix: int(counter) for _, prefix, counter in rows if prefix is not None}
    return {prefix: base_directory_name(prefix, day, last.get(prefix, 0) + 1) for prefix in wanted}
