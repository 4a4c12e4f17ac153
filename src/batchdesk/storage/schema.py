"""The tables as SQLAlchemy Core sees them, for building queries.

The migrations in `batchdesk/storage/migrations/versions/` create these tables (and the triggers
that keep a batch's counts and status in step with its jobs); a test compares the two so they
cannot drift apart. Columns the triggers own (counts, total_files, total_size, status,
updated_at, completed_at, finished_at) are never written by Python code.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

metadata = MetaData()

NOW = text("now()")


def _timestamp(name: str, *, default_now: bool = False) -> Column[object]:
    if default_now:
        return Column(name, TIMESTAMP(timezone=True), nullable=False, server_default=NOW)
    return Column(name, TIMESTAMP(timezone=True))


studio_settings = Table(
    "studio_settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

pipelines = Table(
    "pipelines",
    metadata,
    Column("name", Text, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("steps", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _timestamp("created_at", default_now=True),
    _timestamp("updated_at", default_now=True),
    _timestamp("retired_at"),  # not offered for new batches (0010)
)

# Every version each pipeline ever had (0010); `pipelines` holds the newest one's copy.
pipeline_versions = Table(
    "pipeline_versions",
    metadata,
    Column(
        "name",
        Text,
        ForeignKey("pipelines.name", onupdate="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("steps", JSONB, nullable=False),
    _timestamp("created_at", default_now=True),
    Column("created_by", Text, nullable=False, server_default=""),
)

batches = Table(
    "batches",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("customer_prefix", Text, nullable=False),
    Column("batch_date", Date, nullable=False),
    Column("batch_counter", Integer, nullable=False),
    Column("base_directory_name", Text, nullable=False),
    Column("render_description", Text, nullable=False, server_default=""),
    Column("pipeline", Text, ForeignKey("pipelines.name", onupdate="CASCADE"), nullable=False),
    Column("total_files", Integer, nullable=False, server_default="0"),
    Column("total_pipelines", Integer, nullable=False, server_default="1"),
    Column("total_size", BigInteger, nullable=False, server_default="0"),
    Column("queued_count", Integer, nullable=False, server_default="0"),
    Column("processing_count", Integer, nullable=False, server_default="0"),
    Column("completed_count", Integer, nullable=False, server_default="0"),
    Column("failed_count", Integer, nullable=False, server_default="0"),
    Column("cancelled_count", Integer, nullable=False, server_default="0"),
    Column("status", Text, nullable=False, server_default="queued"),
    _timestamp("created_at", default_now=True),
    _timestamp("updated_at", default_now=True),
    _timestamp("completed_at"),  # when it became completed (0005: completed batches only)
    _timestamp("finished_at"),  # when it finished: completed, failed or cancelled (0005)
    Column("created_by", Text, nullable=False, server_default=""),
    Column("dropbox_path", Text),
    _timestamp("dropbox_uploaded_at"),
    Column("monday_item_id", Text),
    _timestamp("delivered_at"),
    Column("delivered_to", Text),
    # Farm controls (0009): the studio's default priority, and when the batch was paused.
    Column(
        "priority", Integer, nullable=False, server_default=text("batchdesk_default_priority()")
    ),
    _timestamp("paused_at"),
    # The version of `pipeline` its jobs run (0010).
    Column("pipeline_version", Integer, nullable=False),
    ForeignKeyConstraint(
        ["pipeline", "pipeline_version"],
        ["pipeline_versions.name", "pipeline_versions.version"],
        name="batches_pipeline_version_fkey",
        onupdate="CASCADE",
    ),
    UniqueConstraint("base_directory_name", name="batches_base_directory_name_key"),
    UniqueConstraint(
        "customer_prefix", "batch_date", "batch_counter", name="batches_prefix_date_counter_key"
    ),
    CheckConstraint("batch_counter >= 1"),
    Index("batches_status_idx", "status"),
    # The list's default order, newest first with id as the tie-break (migration 0004).
    Index("batches_newest_first_idx", text("created_at DESC NULLS LAST"), text("id DESC")),
    Index(
        "batches_completed_at_idx",
        "completed_at",
        postgresql_where=text("status = 'completed'"),
    ),
)

# Each batch's searchable text, lower-cased: name, description, file names (migration 0008).
batch_search = Table(
    "batch_search",
    metadata,
    Column(
        "batch_id",
        UUID(as_uuid=True),
        ForeignKey("batches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("content", Text, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", LargeBinary, primary_key=True),
    Column("size", BigInteger, nullable=False),
    _timestamp("created_at", default_now=True),
    # Where the bytes are: "database" (blob_chunks) or "store" (the studio's file store folder).
    Column("location", Text, nullable=False, server_default="database"),
    CheckConstraint("location IN ('database', 'store')", name="blobs_location_check"),
    # A store file's CRC-32, which its reads check (NULL: checked by its sha256).
    Column("crc32", BigInteger),
    CheckConstraint("crc32 BETWEEN 0 AND 4294967295", name="blobs_crc32_check"),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column(
        "sha256",
        LargeBinary,
        ForeignKey("blobs.sha256", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("chunk_index", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "batch_id", UUID(as_uuid=True), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
    ),
    Column("position", Integer, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("source_path", Text, nullable=False, server_default=""),
    Column("input_sha256", LargeBinary, ForeignKey("blobs.sha256"), nullable=False),
    Column("input_size", BigInteger, nullable=False),
    Column("pipeline", Text, ForeignKey("pipelines.name", onupdate="CASCADE"), nullable=False),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    Column("last_error", Text),
    Column("worker", Text),
    Column("lease_token", UUID(as_uuid=True)),
    _timestamp("heartbeat_at"),
    _timestamp("run_after", default_now=True),
    _timestamp("created_at", default_now=True),
    _timestamp("started_at"),
    _timestamp("finished_at"),
    # Copies of the batch's priority and pause, kept in step by the statements that change
    # the batch, so that the claim reads one index (0009).
    Column(
        "priority", Integer, nullable=False, server_default=text("batchdesk_default_priority()")
    ),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("last_attempt", Integer, nullable=False, server_default="0"),  # job_attempts.number
    UniqueConstraint("batch_id", "position", name="jobs_batch_id_position_key"),
    Index(
        "jobs_claim_idx",
        text("priority DESC"),
        "run_after",
        "id",
        postgresql_where=text("status = 'queued' AND NOT paused"),
    ),
    Index("jobs_input_sha256_idx", "input_sha256"),
    Index("jobs_processing_worker_idx", "worker", postgresql_where=text("status = 'processing'")),
    # "N done here today" in the window (migration 0007).
    Index(
        "jobs_completed_finished_at_idx",
        "finished_at",
        postgresql_where=text("status = 'completed'"),
    ),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("threads", Integer, nullable=False),
    _timestamp("started_at", default_now=True),
    _timestamp("heartbeat_at", default_now=True),
    Column("kind", Text, nullable=False, server_default="headless"),  # window or headless
    Column("desired_state", Text, nullable=False, server_default="running"),  # or paused
    Column("state", Text, nullable=False, server_default="running"),  # paused, stopping
)

# Every attempt of every job (0009): opened by the claim, closed by what ended it.
job_attempts = Table(
    "job_attempts",
    metadata,
    Column("job_id", BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("worker", Text, nullable=False),
    _timestamp("started_at", default_now=True),
    _timestamp("finished_at"),
    Column("outcome", Text),
    Column("error", Text),
    Column("log", Text),
    Column("ended_by", Text),
    Index(
        "job_attempts_open_idx",
        "job_id",
        unique=True,
        postgresql_where=text("finished_at IS NULL"),
    ),
    Index(
        "job_attempts_completed_idx",
        "worker",
        "finished_at",
        postgresql_where=text("outcome = 'completed'"),
    ),
)

job_outputs = Table(
    "job_outputs",
    metadata,
    Column(
        "job_id",
        BigInteger,
        ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", Text, primary_key=True),
    Column("sha256", LargeBinary, ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Index("job_outputs_sha256_idx", "sha256"),
)

batch_day_counters = Table(
    "batch_day_counters",
    metadata,
    Column("customer_prefix", Text, primary_key=True),
    Column("batch_date", Date, primary_key=True),
    Column("last_counter", Integer, nullable=False),
)
