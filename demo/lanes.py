"""Admission for long jobs (a batch, a Teach run): a few run, a few wait their turn, the rest are refused.

Gradio's queue refuses any new event once `max_size` events wait, whatever they are waiting for (it counts
every concurrency id's waiting events together: gradio/queueing.py, Queue.push, Gradio 6.31). Batches and
Teach runs queued behind their own concurrency limit would therefore fill it and turn single predictions
away with "Queue is full". So their events have no concurrency limit of Gradio's (they never wait in its
queue), and a `Lane` admits them instead: `running` at a time, up to `waiting` more waiting in line (their
generator yields their place, holding no thread meanwhile), and any beyond that refused at once with a
message. Each lane belongs to the panel or tab that made it; nothing here is global.
"""

from __future__ import annotations

import contextlib
import threading

from training.tasks import InputError


class Lane:
    """At most `running` jobs of one kind at once and `waiting` more in line; `jobs` names them in messages
    ("batches", "training runs")."""

    def __init__(self, jobs: str, *, running: int = 1, waiting: int = 2):
        self.jobs, self.running, self.waiting = jobs, running, waiting
        self._line: list[object] = []        # tickets in arrival order: the first `running` run
        self._changed = threading.Condition()

    def enter(self):
        """A place in line (a ticket) to give back with `leave`; refused (InputError) when the line is full."""
        me = object()
        with self._changed:
            if len(self._line) >= self.running + self.waiting:
                raise InputError(f"The server is busy: {len(self._line)} {self.jobs} are running or waiting "
                                 "already. Please try again in a minute.")
            self._line.append(me)
        return me

    def leave(self, ticket) -> None:
        with self._changed:
            self._line.remove(ticket)
            self._changed.notify_all()

    @contextlib.contextmanager
    def ticket(self):
        """A place in line for the duration of the `with` block: leaving it (done, failed, or cancelled, by a
        generator being closed) gives the place up."""
        ticket = self.enter()
        try:
            yield ticket
        finally:
            self.leave(ticket)

    def ahead(self, ticket, timeout: float = 0.0) -> int:
        """How many jobs are ahead of `ticket` before it may run (0: it runs now), after waiting up to
        `timeout` seconds for that to change."""
        with self._changed:
            if self._place(ticket) and timeout:
                self._changed.wait(timeout)
            return self._place(ticket)

    def _place(self, ticket) -> int:
        return max(0, self._line.index(ticket) - self.running + 1)
