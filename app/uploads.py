"""Adding a report from the chat: who may (`upload_allowed`), what is taken (a PDF or a UTF-8 text export, judged
from the bytes and not the name, at most `max_upload_mb`), and the ingest itself, in a background thread whose
progress the chat polls. The generation queue is not involved, so everyone keeps chatting meanwhile.

Everything that can be checked at once (size, type, name) is refused before a thread starts; the rest (an
encrypted or damaged PDF, a text without page numbers) fails inside `library.add_report`, whose staging leaves the
library as it was. Either way the user gets one short message."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reportqa.errors import UserError
from reportqa.ingest.pdf import PDF_MAGIC
from reportqa.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STEPS = {"queued": "starting", "reading": "reading the file", "embedding": "indexing",
         "examples": "checking example questions"}


def upload_allowed(settings: Settings) -> bool:
    """Uploads write to the disk and take the CPU for minutes: on for this machine only, and beyond it only behind
    the password. upload="on" asks for them explicitly, so exposed without a password it is an error, not ignored."""
    if settings.upload == "off":
        return False
    if settings.host in LOOPBACK or (settings.auth_user and settings.auth_password):
        return True
    if settings.upload == "on":
        raise UserError(f"upload=on on {settings.host} needs a password: set REPORTQA_AUTH_USER and "
                        "REPORTQA_AUTH_PASSWORD, or REPORTQA_UPLOAD=auto (no uploads beyond this machine)")
    return False


def content_suffix(data: bytes, file: str) -> str:
    """".pdf" or ".txt" from what the file holds; anything else is refused."""
    if data.startswith(PDF_MAGIC):
        return ".pdf"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{file}: not a PDF or a UTF-8 text export; upload the report as one of those") from None
    return ".txt"


@dataclass
class Job:
    """One upload being ingested; read by the polling chat while the thread updates it."""

    file: str  # the name the user's file had
    name: str  # the report name it gets
    step: str = "queued"
    done: int = 0
    total: int = 0
    finished: bool = False
    error: str | None = None
    title: str = ""
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        """Overall progress: reading 0-5 %, embedding 5-90 %, checking the examples 90-100 %."""
        if self.finished:
            return 1.0
        if self.step == "embedding" and self.total:
            return 0.05 + 0.85 * self.done / self.total
        return {"reading": 0.02, "examples": 0.9}.get(self.step, 0.0)

    def progress(self, step: str, done: int, total: int) -> None:
        self.step, self.done, self.total = step, done, total


class Uploads:
    """The uploads of one app, one ingest at a time (the cores are shared with the model). `on_added(name)` runs
    after a report was added."""

    def __init__(self, settings: Settings, on_added: Callable[[str], None] = lambda name: None):
        self.settings = settings
        self.on_added = on_added
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def start(self, path: str | Path) -> str:
        """Check the uploaded file at `path` (named as the user's file), start ingesting it, return the job id.
        UserError with one short message for a file that is refused at once."""
        from reportqa.index import library

        path = Path(path)
        file = path.name
        size = path.stat().st_size
        if size == 0:
            raise UserError(f"{file}: the file is empty")
        if size > self.settings.max_upload_mb * 2**20:
            raise UserError(f"{file} is {size / 2**20:.1f} MB; the limit is {self.settings.max_upload_mb} MB")
        data = path.read_bytes()
        suffix = content_suffix(data, file)
        name = library.slug(path.stem)
        library.check_name(self.settings, name)
        if name in library.names(self.settings):
            raise UserError(f"a report named {name!r} is already in the library; rename the file or remove that "
                            "report first")
        with self._lock:
            if any(not j.finished for j in self._jobs.values()):
                raise UserError("another report is being added; try again when it is done")
            job_id = uuid.uuid4().hex
            job = self._jobs[job_id] = Job(file, name)
            # a copy named by its content: the loader must not take a text file called .pdf for a PDF
            folder = Path(tempfile.mkdtemp(prefix="reportqa-upload-"))
            (folder / f"{path.stem}{suffix}").write_bytes(data)
            job.thread = threading.Thread(target=self._run, args=(job, folder / f"{path.stem}{suffix}"),
                                          name=f"upload-{name}", daemon=True)
            job.thread.start()
        return job_id

    def _run(self, job: Job, copy: Path) -> None:
        from reportqa.index import library

        try:
            stats = library.add_report(self.settings, copy, job.name, progress=job.progress)
            job.title = stats["title"]
            self.on_added(job.name)
            log.info("added report %s (%s pages) from an upload", job.name, stats["pages"])
        except UserError as e:
            job.error = str(e)
        except Exception:
            log.exception("adding the uploaded report %s failed", job.name)
            job.error = f"{job.file}: adding the report failed; the error is in the server log"
        finally:
            shutil.rmtree(copy.parent, ignore_errors=True)
            job.finished = True
