"""Where each stored file goes inside an exported batch folder.

Every export (zip, folder delivery) lays a batch out the same way: `BASE_NAME/` holds each job's
outputs under safe unique names in submission order, `originals/` the inputs when asked for, and
`manifest.csv` the list of jobs. The same batch therefore always exports under the same names.
"""

from dataclasses import dataclass

from batchdesk.export.entry_names import UniqueNames, safe_component
from batchdesk.storage.batch_contents import JobContents, StoredFile

MANIFEST_NAME = "manifest.csv"
ORIGINALS_FOLDER = "originals"


@dataclass(frozen=True)
class PlacedFile:
    stored: StoredFile
    path: str  # relative to the batch folder, always with forward slashes


@dataclass(frozen=True)
class PlacedJob:
    job: JobContents
    outputs: tuple[PlacedFile, ...]
    original: PlacedFile | None

    @property
    def files(self) -> tuple[PlacedFile, ...]:
        return self.outputs + ((self.original,) if self.original else ())


def batch_folder_name(base_directory_name: str) -> str:
    return safe_component(base_directory_name, fallback="batch")


class BatchLayout:
    """Assigns each job's files their paths, in the order the jobs are placed."""

    def __init__(self, *, include_inputs: bool) -> None:
        self.include_inputs = include_inputs
        self._outputs = UniqueNames(reserved=(MANIFEST_NAME, ORIGINALS_FOLDER))
        self._originals = UniqueNames()

    def place(self, job: JobContents) -> PlacedJob:
        outputs = tuple(PlacedFile(f, self._outputs.claim(f.name)) for f in job.outputs)
        original = None
        if self.include_inputs:
            name = self._originals.claim(job.input.name)
            original = PlacedFile(job.input, f"{ORIGINALS_FOLDER}/{name}")
        return PlacedJob(job, outputs, original)
