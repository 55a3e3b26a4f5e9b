"""The `payalloc` command line: a thin layer that parses, calls one service, and prints."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from payalloc import __version__
from payalloc.cli import process
from payalloc.cli.state import STATE, empty_variable
from payalloc.errors import (
    DISK_FULL_CAUSE,
    EXIT_BUG,
    EXIT_BUSY,
    EXIT_INPUT,
    PayallocError,
    ProblemsError,
    Terminated,
    UsageError,
    no_space,
)

EPILOG = (
    "Exit status: 0 done, 1 internal error or disk full, 2 usage error, 3 input refused (nothing written), "
    "4 ledger busy, 5 check found a violation."
)
DISK_FULL = (
    f"{DISK_FULL_CAUSE}: the change in progress was rolled back "
    "and nothing of it was written; free some space and run the command again"
)


class _ErrorBoundary(TyperGroup):
    """Renders every error in one place: one sentence on stderr and the spec's exit status.
    No traceback (PHI may sit in locals) unless --debug, which adds one and changes nothing
    else: a script that adds --debug still sees 3 for refused input."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:  # an unknown global option is refused here, before invoke
            return super().make_context(info_name, args, parent, **extra)
        except Exception as err:
            if _output_failed(err):  # --help or --version to a full disk or a closed stdout
                from payalloc.cli import output

                _drop_stdout()
                output.error(_output_lost(err, saved=False))
                raise typer.Exit(EXIT_BUG) from None
            _echo_safely(err)
            raise

    def invoke(self, ctx: Any) -> Any:
        from payalloc.ledger import connection

        commits = connection.commits
        try:
            result = super().invoke(ctx)
            # Here, not at exit: a full disk or a gone reader must meet the handlers below.
            sys.stdout.flush()
            return result
        except PayallocError as err:
            _traceback_if_debug()
            _refusal_json(err, str(err))
            _report(err)
            raise typer.Exit(err.exit_code) from None
        except sqlite3.OperationalError as err:
            stop = process.take()
            if stop is not None:  # it landed in an SQL function payalloc gave SQLite, which said only that
                _report_stop(stop)
            _traceback_if_debug()
            from payalloc.cli import output

            sentence, code = _database_failure(err, saved=connection.commits > commits)
            _refusal_json(err, sentence)
            output.error(sentence)
            raise typer.Exit(code) from None
        except BrokenPipeError:
            # The reader went away (`payalloc ... | head`): not an error. Send what is still
            # buffered to /dev/null so that the final flush cannot fail either.
            _drop_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt as err:
            _report_stop(err)
        except Exception as err:
            # Typer's own control flow (help, usage errors, Exit) passes through; it lives in
            # typer._click, a vendored Click, so match on the module rather than on classes.
            if type(err).__module__.startswith("typer"):
                _echo_safely(err)
                raise
            _traceback_if_debug()
            from payalloc.cli import output

            if _output_failed(err):  # stdout goes to a full disk, or is closed (exports and backups say so themselves)
                _drop_stdout()
                output.error(_output_lost(err, saved=connection.commits > commits))
                raise typer.Exit(EXIT_BUG) from None
            # Includes sqlite3.IntegrityError: the database's own guard refused a write the
            # Python checks let through. A bug, but the transaction rolled back: nothing written.
            # The kind of error only: its text may quote a value (a name, a note) from the ledger.
            sentence = (f"internal error ({type(err).__name__}); nothing was written; "
                        "run with --debug for a traceback and report it")
            _refusal_json(err, sentence)
            output.error(sentence)
            raise typer.Exit(EXIT_BUG) from None


def _drop_stdout() -> None:
    """Send what is still buffered for stdout to /dev/null, so that the final flush cannot fail too."""
    with contextlib.suppress(OSError, ValueError):  # not a file (tests' CliRunner): nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _output_failed(err: BaseException) -> bool:
    """A write to stdout failed: a full disk, or a stdout closed at start (process.closed_at_start)."""
    return no_space(err) or (isinstance(err, OSError) and err.errno == errno.EBADF and 1 in process.closed_at_start)


def _output_lost(err: BaseException, *, saved: bool) -> str:
    full = no_space(err)
    cause, remedy = ("the disk is full", "free some space") if full else (
        "stdout is closed", "open it (>/dev/null discards the output)")
    if saved:  # a clerk must not apply twice; run-job and import pick up where they are
        return (f"{cause}: the output could not be written, but the change was saved in the ledger;"
                f" {remedy}, and check the result before running the command again"
                " (run-job and import are safe to run again)")
    return f"{cause}: the output could not be written; nothing was changed, {remedy} and run the command again"


def _echo_safely(err: Exception) -> None:
    """A usage error in the one-sentence form of every other error ("error: Missing option
    '--amount' (see payalloc payment record --help)"), not Click's four lines of usage, hint and
    "Error:". It quotes the user's words ("No such option: --x"): Typer escapes C0/C1 controls in
    them but lets bidi and zero-width characters through, so strip those too. A bare group name
    (`payalloc payment`) still shows its help."""
    message = getattr(err, "message", None)
    if not isinstance(message, str):
        return
    from payalloc.cli import output

    err.message = output.safe(message)  # type: ignore[attr-defined]
    ctx = getattr(err, "ctx", None)
    if getattr(err, "exit_code", None) == 2 and type(err).__name__ != "NoArgsIsHelpError":
        # Click lays some out on lines ("Choose from:\n\toldest,\n\tspecific"): one line of words.
        sentence = " ".join(err.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        if ctx is None:  # refused while parsing, before a command had its context (`--limit` with no N)
            output.error(f"{sentence} (see payalloc --help)")
            raise typer.Exit(2) from None
        option, path = getattr(err, "option_name", None), output.safe(ctx.command_path)
        if option in _GLOBAL_OPTIONS and ctx.parent is not None:  # `payalloc check --db x.db`
            program, _, command = path.partition(" ")
            if isinstance(ctx.command, TyperGroup):  # `payalloc payment --db x list`: the command goes on
                command += " ..."
            output.error(f"{option} is a global option: it goes before the command, as in"
                         f" {program} {_GLOBAL_OPTIONS[option]}{command} (see {program} --help)")
        else:
            output.error(f"{sentence} (see {path} --help)")
        raise typer.Exit(2) from None


# The options of the program itself, as they are written before a command.
_GLOBAL_OPTIONS = {"--db": "--db FILE ", "--staff": "--staff NAME ", "--debug": "--debug "}


def _report_stop(err: KeyboardInterrupt) -> NoReturn:
    """Typer would turn a stop into a silent exit 130: say what happened, on stderr."""
    _refusal_json(err, _stopped(_stop(err)[0]))
    raise typer.Exit(_say_stopped(err)) from None


def _say_stopped(err: KeyboardInterrupt) -> int:
    """Say on stderr that `err` stopped the command; its exit status."""
    from payalloc.cli import output

    what, code = _stop(err)
    output.error(_stopped(what))
    return code


def _stop(err: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped the command, and its exit status (128 + the signal's number)."""
    return ("terminated (SIGTERM)", Terminated.exit_code) if isinstance(err, Terminated) else ("interrupted", 130)


def _stopped(what: str) -> str:
    # The signal may land just after a COMMIT: "rolled back" alone could make a clerk record twice.
    return (f"{what}: a change not yet saved was rolled back, one already saved stays (the ledger is as"
            " before or as after); run-job and import are safe to run again, check any other command's"
            " result first")


def _traceback_if_debug() -> None:
    if STATE.debug:
        import traceback

        with contextlib.suppress(OSError):  # stderr to a full disk: the sentence and status still follow
            traceback.print_exc(file=sys.stderr)


def _database_failure(err: sqlite3.OperationalError, *, saved: bool) -> tuple[str, int]:
    from payalloc.ledger.connection import busy_error, is_busy, is_full

    if is_busy(err):
        return str(busy_error()), EXIT_BUSY
    if is_full(err):
        # Not 4: cron wrappers may treat "busy" as harmless and retry; a full disk needs a person.
        # SQLite rolled back the write transaction in progress (run-job, once it has committed
        # a chunk, says so itself: errors.LedgerFull).
        return DISK_FULL, EXIT_BUG
    # SQLITE_READONLY itself, not its extended codes (a ledger moved or replaced meanwhile is DBMOVED).
    if getattr(err, "sqlite_errorcode", 0) == sqlite3.SQLITE_READONLY:
        # A ledger this user may only read opens (reading commands work) and refuses the first write.
        done = "the change in progress was not written (those before it were)" if saved else "nothing was written"
        return (f"ledger {STATE.db} is read-only for this user (its file mode, or a read-only file system):"
                f" {done}"), EXIT_INPUT
    return f"the ledger could not be used ({err}); run with --debug for details", EXIT_BUG


def _refusal_json(err: BaseException, sentence: str) -> None:
    """With --json, a command that stops on an error prints one object on stdout too: its fields
    (STATE.json_refusal), "refused", the sentence also written to stderr, and each problem of a
    batch with its line, column and reason (reasons never quote a name or a note)."""
    if STATE.json_refusal is None:
        return
    from payalloc.cli import output

    problems = err.problems if isinstance(err, ProblemsError) else []
    try:
        output.emit_json({
            **STATE.json_refusal, "refused": True, "error": sentence,
            "problem_count": err.total if isinstance(err, ProblemsError) else 0,
            "problems": [{"line": p.line or None, "column": p.column or None, "reason": p.reason} for p in problems],
        })
        sys.stdout.flush()
    except OSError as error:  # stdout closed or on a full disk: the sentence on stderr and the status remain
        if not _output_failed(error):
            raise
        _drop_stdout()


def _report(err: PayallocError) -> None:
    from payalloc.cli import output

    if isinstance(err, ProblemsError):
        lines = err.lines()
        output.error(lines[0])
        for extra in lines[1:]:
            output.message(f"  {extra}")
    else:
        output.error(str(err))


app = typer.Typer(
    name="payalloc",
    help="Allocate client (self-pay) payments to the charges they pay for, over a SQLite ledger.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    cls=_ErrorBoundary,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"payalloc {__version__}\n")
        sys.stdout.flush()  # here, where a full disk or a closed stdout meets make_context's handler
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    db: Annotated[  # text, not Path: Path("") would be "." and the error would name a directory
        str, typer.Option("--db", envvar="PAYALLOC_DB", metavar="FILE", help="Ledger file.", show_default=True)
    ] = "payalloc.db",
    staff: Annotated[
        str | None,
        typer.Option("--staff", envvar="PAYALLOC_STAFF", metavar="NAME", help="Who does manual actions (default: login name)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """payalloc: record client payments, allocate them to charges, run the nightly job.

    Example: payalloc --db practice.db unallocated
    """
    source = getattr(ctx.get_parameter_source("db"), "name", None)
    if source == "DEFAULT" and os.environ.get("PAYALLOC_DB") == "":  # Click reads it as unset
        raise empty_variable("PAYALLOC_DB", "give the ledger file", "payalloc.db in the current directory")
    if not db.strip():
        given = "PAYALLOC_DB" if source == "ENVIRONMENT" else "--db"
        raise UsageError(f"{given} is empty: give the ledger file, e.g. --db practice.db")
    STATE.db = Path(db)
    STATE.staff_name = staff
    STATE.debug = debug
    STATE.json_refusal = None


def main() -> None:
    """Console-script entry point."""
    process.prepare()
    try:
        code = _run()
    finally:
        late = process.disarm()
    if late is not None:  # swallowed where it could not be raised, after the command's last step
        code = _say_stopped(late)
    sys.exit(code)


def _run() -> int | str | None:
    """Run the command line: the exit status (Typer ends with SystemExit)."""
    from payalloc.cli import output

    try:
        app()
    except KeyboardInterrupt as err:  # outside a command (while it loads)
        what, code = _stop(err)
        output.to_stderr(f"error: {what} while payalloc was starting or ending; no change was in progress\n")
        return code
    except SystemExit as done:
        stop = _stop_typer_silenced(done)
        return done.code if stop is None else _say_stopped(stop)
    return 0


def _stop_typer_silenced(done: SystemExit) -> KeyboardInterrupt | None:
    """Typer turns a KeyboardInterrupt that reaches it into a silent exit 130 (`raise Exit(130) from
    it`, then sys.exit): one raised outside _ErrorBoundary.invoke, while the command line is parsed
    or as the command's context closes, and a SIGTERM's Terminated as well. That stop, if so."""
    typer_exit = done.__context__
    cause = None if typer_exit is None else typer_exit.__cause__
    return cause if isinstance(cause, KeyboardInterrupt) else None



# Each command module registers its own commands (see commands.py). Run as the `payalloc`
# program, only the requested command's module is loaded; imported (tests), all of them.
from payalloc.cli import commands as _commands  # noqa: E402

_ENTRY_POINT = os.path.basename(sys.argv[0]) == "payalloc" or sys.argv[0].endswith(
    os.path.join("payalloc", "__main__.py"))
_commands.register(app, _commands.requested(sys.argv[1:]) if _ENTRY_POINT else None)

__all__ = ["app", "main"]
