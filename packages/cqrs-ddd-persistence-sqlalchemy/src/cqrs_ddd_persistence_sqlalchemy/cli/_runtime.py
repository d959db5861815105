"""What every command shares: database options, engine set-up, the one error boundary.

Every command body is an ``async`` function handed to :func:`run`. :func:`run` is the single
place where failures become a one-line message and a non-zero exit code: the library's error tree
(``CQRSDDDError``), driver and connection errors (translated by
:func:`cqrs_ddd_persistence_sqlalchemy.errors.translate`) and malformed URLs. No traceback
reaches the user; ``CQRS_CLI_DEBUG=1`` re-raises instead, for debugging.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, NoReturn, Protocol, TypeVar

import typer
from rich.console import Console
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.errors import ConfigurationError, CQRSDDDError, MissingSchemaError
from cqrs_ddd_persistence_sqlalchemy.dialects import support_for_url, with_default_driver

__all__ = [
    "DatabaseUrl",
    "Pooler",
    "Schema",
    "console",
    "err_console",
    "fail",
    "missing_tables",
    "normalize_url",
    "open_engine",
    "require_tables",
    "run",
    "serve",
    "stop_on_signals",
]

T = TypeVar("T")

ENV_URL = "CQRS_DATABASE_URL"
ENV_SCHEMA = "CQRS_DATABASE_SCHEMA"
ENV_POOLER = "CQRS_POOLER"
#: Read replicas of the database (space-separated URLs): query-side reads go to them.
ENV_REPLICAS = "CQRS_REPLICA_URLS"
#: Seconds a command waits for a PostgreSQL connection unless the URL says otherwise.
CONNECT_TIMEOUT = 10

console = Console(highlight=False)
# soft_wrap: an error stays on one line whatever the terminal width.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        envvar=ENV_URL,
        help="Database URL: postgresql+asyncpg://… (or postgresql+psycopg://…) or "
        "sqlite+aiosqlite:///… (async drivers are added to plain postgresql:// and sqlite:///); "
        "query parameters go to the driver (?statement_cache_size=0, ?sslmode=require...).",
        show_default=False,
    ),
]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        envvar=ENV_SCHEMA,
        help="PostgreSQL schema to work in (search_path = <schema>, public).",
        show_default=False,
    ),
]

Pooler = Annotated[
    str | None,
    typer.Option(
        "--pooler",
        envvar=ENV_POOLER,
        help="'transaction' when the URL points at a transaction-mode pooler (PgBouncer, RDS "
        "Proxy, Supavisor): no named prepared statements, settings per transaction, polling "
        "instead of LISTEN.",
        show_default=False,
    ),
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class CliError(Exception):
    """A user-facing failure detected by the CLI itself (bad option, missing table)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {_one_line(message)}", markup=True)
    raise typer.Exit(code)


def _one_line(message: str) -> str:
    from rich.markup import escape

    return escape(" ".join(str(message).split()))


def normalize_url(url: str | None) -> str:
    """Check ``url``; plain ``postgresql://`` / ``sqlite:///`` get the async drivers."""
    if not url:
        raise CliError(f"no database URL: pass --database-url or set {ENV_URL}")
    try:
        return with_default_driver(url)
    except ConfigurationError as exc:
        raise CliError(str(exc)) from exc


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def open_engine(
    url: str | None, schema: str | None = None, pooler: str | None = None, **kwargs: Any
) -> AsyncEngine:
    """An engine for ``url`` built with the library's defaults (``create_engine``).

    On PostgreSQL a connect timeout of 10 s (unless the URL sets one) keeps a dead or
    firewalled server from hanging the command, and ``schema`` sets ``search_path`` to
    ``<schema>, public``. Both are added as the URL's libpq parameters (``connect_timeout``,
    ``options=-c search_path=…``), which ``create_engine`` hands to whichever driver the URL
    names, like the URL's own parameters. ``pooler`` is ``create_engine``'s (with
    ``"transaction"`` they are applied per transaction instead of at connect).
    ``CQRS_REPLICA_URLS`` (space-separated) gives the database's read replicas, with the same
    defaults (see ``docs/replicas.md``).
    """
    from cqrs_ddd_persistence_sqlalchemy.engine import create_engine

    parsed = make_url(normalize_url(url))
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise CliError(f"invalid schema name {schema!r}: letters, digits, _ and $ only")
    try:
        support = support_for_url(parsed)
        parsed = support.with_session_defaults(
            parsed, schema=schema, connect_timeout=CONNECT_TIMEOUT
        )
    except ConfigurationError as exc:
        raise CliError(str(exc)) from exc
    replicas = _replica_urls(schema)
    if replicas:
        kwargs.setdefault("replicas", replicas)
    try:
        if pooler:
            kwargs["pooler"] = pooler
        return create_engine(parsed, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise CliError(f"cannot use database URL {_safe(parsed)}: {exc}") from exc


def _replica_urls(schema: str | None) -> list[URL]:
    """The ``CQRS_REPLICA_URLS`` with the session defaults of :func:`open_engine`."""
    urls = []
    for given in os.environ.get(ENV_REPLICAS, "").split():
        try:
            replica = make_url(normalize_url(given))
        except sa_exc.ArgumentError as exc:
            raise CliError(f"{ENV_REPLICAS}: not a database URL: {given[:80]!r}") from exc
        support = support_for_url(replica)
        if support.replication is None:
            raise CliError(f"{ENV_REPLICAS}: {support.name} has no read replicas")
        urls.append(
            support.with_session_defaults(replica, schema=schema, connect_timeout=CONNECT_TIMEOUT)
        )
    return urls


def describe_url(engine: AsyncEngine) -> str:
    """The engine's URL with the password hidden."""
    return _safe(engine.url)


def missing_tables_sync(connection: Any, names: Iterable[str]) -> list[str]:
    """Which of ``names`` do not exist (run inside ``conn.run_sync``)."""
    existing = set(sa_inspect(connection).get_table_names())
    return [name for name in names if name not in existing]


async def missing_tables(engine: AsyncEngine, names: Iterable[str]) -> list[str]:
    """Which of the tables ``names`` do not exist in the engine's database / schema."""
    wanted = list(names)
    async with engine.connect() as conn:
        return await conn.run_sync(missing_tables_sync, wanted)


async def require_tables(engine: AsyncEngine, names: Iterable[str]) -> None:
    """Raise ``MissingSchemaError`` naming the missing tables, with the way to create them."""
    missing = await missing_tables(engine, names)
    if missing:
        raise MissingSchemaError(
            f"missing table(s) {', '.join(missing)} in {describe_url(engine)}: run "
            "`cqrs-ddd-sqla schema create` or apply the migrations"
        )


@asynccontextmanager
async def engine_scope(
    url: str | None, schema: str | None = None, pooler: str | None = None
) -> AsyncIterator[AsyncEngine]:
    """An engine disposed of when the block ends."""
    engine = open_engine(url, schema, pooler)
    try:
        yield engine
    finally:
        await engine.dispose()


def _debug() -> bool:
    return os.environ.get("CQRS_CLI_DEBUG") == "1"


def _message(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for a bug."""
    from cqrs_ddd_persistence_sqlalchemy.errors import translate

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, CQRSDDDError):
        return f"{type(exc).__name__}: {exc}"
    translated = translate(exc)
    if translated is not None:
        return f"{type(translated).__name__}: {translated}"
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return f"invalid database configuration: {exc}"
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot reach the database: {exc}"
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return f"database error: {exc}"
    return None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Callable[[], Awaitable[T]], *, service: bool = False) -> T:
    """Run the async command body ``main``; the one error boundary of the CLI.

    ``service=True`` (relay, workers, runners) uses uvloop when it is installed.
    """
    factory = _loop_factory() if service else None

    async def _wrapped() -> T:
        return await main()

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_wrapped())
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:
        message = _message(exc)
        if message is None or _debug():
            raise
        logging.getLogger(__name__).debug("command failed", exc_info=exc)
        fail(message)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, for a graceful shutdown of long-running services."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, stop.set)
    return stop


class Service(Protocol):
    """A long-running worker: ``run()`` until ``stop()`` is called."""

    async def run(self) -> Any: ...

    def stop(self) -> Any: ...


async def serve(services: Sequence[Service]) -> None:
    """Run ``services`` until SIGINT/SIGTERM or until one of them ends, then stop them all.

    A service that failed re-raises its error here (after the others stopped gracefully).
    """
    stop = stop_on_signals()
    tasks = [asyncio.create_task(s.run()) for s in services]
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for service in services:
            service.stop()
        stopper.cancel()
    await asyncio.gather(*tasks)
