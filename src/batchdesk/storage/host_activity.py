"""What the workers of one computer did: the jobs they completed today.

A worker's id starts with the name of the computer it runs on (`worker_liveness.new_worker_id`:
`host:pid:random`), and a job keeps the id of the worker that completed it, so the count covers
every worker of the computer (its windows and its headless `batchdesk worker`s), also those that
have stopped since. "Today" is the studio's, as for batch names (`batchdesk db timezone`).
"""

import socket

from batchdesk.storage.pool import Connection, only_row

# The studio's midnight as a moment (today's date in its zone, read back in that zone), worked
# out once per query, then a range on the index of completed jobs (migration 0007).
_COMPLETED_TODAY = """
SELECT count(*) FROM jobs
WHERE status = 'completed'
  AND finished_at >= (SELECT batchdesk_today()::timestamp AT TIME ZONE coalesce(
      (SELECT value FROM studio_settings WHERE key = 'time_zone'), current_setting('TimeZone')))
  AND split_part(worker, ':', 1) = %s
"""


def this_host() -> str:
    """The name this computer's workers put at the start of their ids."""
    return socket.gethostname()


def completed_today(connection: Connection, host: str) -> int:
    """Return how many jobs the workers on `host` completed since the studio's midnight."""
    (count,) = only_row(connection.execute(_COMPLETED_TODAY, (host,)))
    return int(count)
