"""Every error a user can cause, each with the exit status of the spec.

Messages name ids, never patients: this is health data.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TypeGuard

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_BUSY = 4
EXIT_CHECK = 5


class PayallocError(Exception):
    """An expected failure: one sentence for the user and an exit status."""

    exit_code = EXIT_BUG


class UsageError(PayallocError):
    """The command line itself is wrong (options that exclude each other, a missing argument)."""

    exit_code = EXIT_USAGE


class InputError(PayallocError):
    """Input refused: validation failed and nothing was written."""

    exit_code = EXIT_INPUT


class NotFound(InputError):
    """An id that the ledger does not know."""


class LedgerMissing(InputError):
    """The ledger file does not exist (only `init` creates one)."""


class LedgerBusy(PayallocError):
    """Another run-job holds the ledger, or the database stayed locked."""

    exit_code = EXIT_BUSY


DISK_FULL_CAUSE = "the disk is full (or the ledger reached its size limit)"


class DiskFull(PayallocError):
    """No room for a file payalloc writes (SQLITE_FULL, ENOSPC, a quota): exit 1 (not 4: cron
    wrappers may retry "busy" quietly; a full disk needs a person)."""


class LedgerFull(DiskFull):
    """The disk filled (SQLITE_FULL) after run-job committed some chunks: it says what stays."""


def no_space(error: BaseException) -> TypeGuard[OSError]:
    """ENOSPC, or EDQUOT (the user's quota: as full for that user)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(what: str) -> DiskFull:
    """A full disk stopped `what` ("cannot write journal.csv") before anything was written."""
    return DiskFull(f"the disk is full: {what}; nothing was written, free some space and run the command again")


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, systemd stopping a unit): handled as Ctrl-C is, the step in
    progress rolled back and a run-job recorded interrupted, then exit 128 + 15."""

    exit_code = 143


@dataclass(frozen=True)
class Problem:
    """One problem of a batch (a CSV row, one line of `apply`), located for the user."""

    where: str
    reason: str
    line: int = 0  # the file line it is on, to list problems in file order (0: not about a line)
    column: str = ""  # the CSV column it is about, for `import --json` ("" : the whole row)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


class ProblemsError(InputError):
    """A batch refused as a whole: its problems (those kept to show, in order) and how many were
    found in all; lines() lists the first of them and counts the rest."""

    def __init__(self, summary: str, problems: list[Problem], total: int | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = problems
        self.total = len(problems) if total is None else total

    def lines(self, limit: int = 50) -> list[str]:
        out = [self.summary]
        out += [str(p) for p in self.problems[:limit]]
        hidden = self.total - min(limit, len(self.problems))
        if hidden > 0:
            out.append(f"... and {hidden} more problem{'s' if hidden != 1 else ''}")
        return out


class CheckFailed(PayallocError):
    """`payalloc check` found an invariant violated."""

    exit_code = EXIT_CHECK
