"""What the payalloc process sets up before any command: owner-only files, standard streams that
can be written, and stops (Ctrl-C, SIGTERM) that unwind instead of being lost."""

from __future__ import annotations

import codecs
import io
import os
import signal
import sqlite3
import sys

from payalloc.errors import Terminated


def prepare() -> None:
    """Before the command line is read."""
    os.umask(0o077)  # everything payalloc creates (ledger, lock, exports, backups) is owner-only
    _open_closed_streams()
    _encodable_output()
    sys.unraisablehook = _stop_swallowed
    # An exception in an SQL function payalloc gives SQLite (client list --name) reaches the hook
    # too, instead of being dropped: SQLite only says "user-defined function raised exception".
    sqlite3.enable_callback_tracebacks(True)
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C (transactions roll back, run-job records its run interrupted)
    instead of ending the process on the spot; a second SIGTERM ends it at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated("stopped by SIGTERM")


# The standard streams (0, 1, 2) that were closed when payalloc started: see _open_closed_streams.
closed_at_start: set[int] = set()


def _open_closed_streams() -> None:
    """A script or a cron line may start payalloc with stdin, stdout or stderr closed (`<&-`, `>&-`,
    `2>&-`): Python then has None for it, and the first read or print was an internal error
    (AttributeError), after the change was saved. Each gets /dev/null, which also keeps the ledger
    or an export from being opened as descriptor 1 or 2 and written by a print: stdin reads as
    empty, stderr discards, and stdout is opened read-only, so that output fails (EBADF) and is
    said to be lost as on a full disk; a command that prints nothing (run-job -q) runs as ever."""
    for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_RDONLY), (2, "stderr", os.O_WRONLY)):
        if getattr(sys, name) is not None:
            continue
        opened = os.open(os.devnull, flags)  # the lowest free descriptor: fd itself
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        stream = open(fd, "r" if fd == 0 else "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      closefd=False)  # it lives as long as the process, as sys.stdout does
        setattr(sys, name, stream)
        closed_at_start.add(fd)


def _json_escapes(error: UnicodeError) -> tuple[str | bytes, int]:
    """An encoding error handler: each character as \\uXXXX (UTF-16, as JSON escapes it)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in error.object[error.start:error.end]):
        return codecs.lookup_error("surrogateescape")(error)  # bytes of a name that is not UTF-8: as they were
    units = error.object[error.start:error.end].encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)), error.end


def _encodable_output() -> None:
    """Under a locale that is not UTF-8 (LANG=C with PYTHONUTF8=0, a Latin-1 one), a name it cannot
    encode ("李") was an internal error (UnicodeEncodeError). Such characters are written as \\uXXXX
    escapes instead, which JSON reads back as the same text; what the locale can encode is unchanged."""
    codecs.register_error("payalloc-json-escapes", _json_escapes)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(errors="payalloc-json-escapes")


REDELIVER_S = 0.001  # how soon a stop that Python swallowed is raised again (_stop_swallowed)

# A stop (Ctrl-C, SIGTERM) that Python swallowed and that has not been raised again yet; and
# whether payalloc is ending (then none is raised again: disarm()).
_pending: list[KeyboardInterrupt] = []
_ending = False


def _stop_swallowed(unraisable: sys.UnraisableHookArgs) -> None:
    """sys.unraisablehook. Python cannot let an exception out of a weakref callback or a __del__:
    it prints it with a traceback ("Exception ignored in ...") and carries on. importlib runs such a
    callback at the end of every import, and commands import as they go, so the KeyboardInterrupt
    of a Ctrl-C or the Terminated of a SIGTERM (_terminated) could land there and be lost: the
    command went on to the end and exited 0, a traceback on stderr. Raise it again a moment later
    (SIGALRM), from wherever the program is by then; any other exception is printed as Python does."""
    error = unraisable.exc_value
    if not isinstance(error, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    _record(type(error)(*error.args))


def _record(stop: KeyboardInterrupt) -> None:
    """Raise `stop` again soon, from wherever the program is by then: it was caught where it
    cannot be raised (a weakref callback, an SQL function SQLite calls)."""
    if _pending:
        return  # one stop at a time: a second is the same request
    _pending.append(stop)
    if _ending:
        return  # main() reports it as it ends
    signal.signal(signal.SIGALRM, _again)
    while True:
        try:
            signal.setitimer(signal.ITIMER_REAL, REDELIVER_S)
            return
        except KeyboardInterrupt:  # it fired before this returned: still where it would be lost
            signal.signal(signal.SIGALRM, _again)


def _again(signum: int, frame: object) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    if _pending:
        raise _pending.pop()


def take() -> KeyboardInterrupt | None:
    """The stop recorded and not raised yet, if any, for the caller to raise or report now."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    return _pending.pop() if _pending else None


def disarm() -> KeyboardInterrupt | None:
    """payalloc is ending: no stop goes off any more (SIGALRM's default action would kill the
    process, exit 142, if one went off during the interpreter's shutdown). The stop recorded and
    not raised yet, if any, for main() to report."""
    global _ending
    _ending = True
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # left as it is by the interpreter's shutdown
    return take()
