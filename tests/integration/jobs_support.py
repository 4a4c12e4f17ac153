"""Running real jobs for tests that need what a pipeline produced."""

from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.database import Database

FAST = RunnerConfig(threads=2, heartbeat_interval=0.5, poll_interval=0.5, liveness_timeout=3)


def run_all_jobs(database: Database, timeout: float = 90) -> None:
    """Run every queued job on a real runner until nothing is left."""
    runner = Runner(database, FAST)
    runner.start()
    try:
        assert runner.drained.wait(timeout), "the runner did not finish the queue"
    finally:
        runner.stop()
