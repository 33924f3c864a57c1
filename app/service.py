"""What every door into the assistant shares: one answer engine per report, and one queue for generation.

The web chat and the OpenAI-compatible endpoint both answer through a `Service`. Engines are built on first use per
report (the model itself is loaded once per process by `get_llm`, so a second report costs only its index), and
every generation, whichever door it came through, waits its turn in one first-come-first-served queue: the 1.5B
model runs one answer at a time on a laptop's cores, and a second concurrent one would only make both slower."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from reportqa.errors import UserError
from reportqa.settings import Settings


class Busy(UserError):
    """The queue is full: the caller should try again later."""


class TurnQueue:
    """A fair lock: callers get the turn in the order they asked for it; at most `max_waiting` may wait."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = object()
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise Busy("the assistant is busy with other questions; try again in a minute")
            self._waiting.append(me)
            while self._busy or self._waiting[0] is not me:
                self._cond.wait()
            self._waiting.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class Service:
    """Engines by report name (None: the report `settings` was selected for, else the bundled one) and the shared
    generation queue. `engine`, when given, serves that first report (tests pass a scripted one)."""

    def __init__(self, settings: Settings, engine=None):
        from reportqa.index import library

        self.settings = library.base(settings)
        self.default = settings.report_name or library.default_name(self.settings)
        self.queue = TurnQueue(settings.queue_size)
        self._engines: dict[str, object] = {self.default: engine} if engine is not None else {}
        self._lock = threading.Lock()

    def settings_for(self, name: str | None) -> Settings:
        from reportqa.index import library

        return library.select(self.settings, name or self.default)

    def engine(self, name: str | None = None):
        """The answer engine of report `name` (UnknownReport for a name the library does not have)."""
        name = name or self.default
        with self._lock:
            if name not in self._engines:
                from reportqa.answer import AnswerEngine

                self._engines[name] = AnswerEngine(self.settings_for(name))
            return self._engines[name]

    def forget(self, name: str) -> None:
        """Drop a report's engine (after it was rebuilt or removed), so the next question opens the new index."""
        with self._lock:
            self._engines.pop(name, None)
