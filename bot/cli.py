"""The `countersign` command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from bot.audit_cli import audit_cli
from bot.errors import ConfigError
from bot.policy import Policy
from bot.settings import Settings, async_database_url, write_dev_env

if TYPE_CHECKING:
    from bot.app import Deps

cli = typer.Typer(
    help="Countersign: finance approvals for DialNexa calls, in Slack.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(audit_cli, name="audit")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"countersign: {message}", err=True)
    return typer.Exit(code=2)


def _settings(*, socket_mode: bool = False) -> Settings:
    try:
        settings = Settings()
        settings.require(socket_mode=socket_mode)
        async_database_url(settings.database_url)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(f"{str(err['loc'][0]).upper()}: {err['msg']}") from None
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    return settings


def _policy(settings: Settings) -> Policy:
    from bot.policy import PolicyError, load_policy

    try:
        return load_policy(settings.policy_path)
    except PolicyError as exc:
        raise _fail(str(exc)) from None


def _prepare(*, socket_mode: bool = False, write_env: bool = False) -> Deps:
    """Settings, policy and database for a long-running command; migrates SQLite."""
    from bot.app import Deps
    from bot.logs import configure
    from storage.db import Database
    from storage.migrate import upgrade

    configure()
    if write_env and write_dev_env(Path(".env")):
        typer.echo(
            "countersign: no configuration found, so wrote .env with fresh development secrets "
            "(git-ignored). Add SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET there to connect Slack."
        )
    settings = _settings(socket_mode=socket_mode)
    policy = _policy(settings)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    return Deps(
        settings=settings,
        db=Database(async_database_url(settings.database_url)),
        policy=policy,
        socket_mode=socket_mode,
    )


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="Talk to Slack over Socket Mode.")
    ] = False,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="HTTP routes only.")] = False,
) -> None:
    """Run the service: HTTP routes plus the outbox workers and the scheduler."""
    import uvicorn

    from bot.app import create_app

    deps = _prepare(socket_mode=socket_mode, write_env=True)
    app = create_app(deps, workers=not no_workers)
    typer.echo(f"countersign: listening on http://{host}:{port} (POST /dialnexa/webhook)")
    _settle_heap()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def _settle_heap() -> None:
    """Keep start-up objects out of the garbage collector's full passes.

    Everything imported and built at start-up lives as long as the process; freezing it spares
    each full collection from walking it again, which showed up as pauses in click latency.
    """
    import gc

    gc.collect()
    gc.freeze()


@cli.command()
def worker() -> None:
    """Run only the outbox workers and the scheduler (add these to scale out)."""
    import asyncio
    import signal

    from bot.app import create_app

    deps = _prepare()
    app = create_app(deps, workers=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with app.router.lifespan_context(app):
            typer.echo("countersign: worker running (outbox and scheduler); Ctrl-C stops it")
            await stop.wait()
        await deps.db.dispose()

    asyncio.run(run())


@cli.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
) -> None:
    """Run Countersign against local stand-ins for Slack, Polygon.io and the outcome receiver,
    with a page at /sandbox: no Slack app needed. Starts from a fresh ./sandbox.db each time."""
    from bot.logs import configure
    from bot.sandbox import run_sandbox

    configure()
    try:
        run_sandbox(host=host, port=port, database=Path("sandbox.db"), echo=typer.echo)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@cli.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
) -> None:
    """Start what the configuration allows: the service when Slack is configured, else the
    sandbox. On a fresh clone it first writes .env with development secrets."""
    if write_dev_env(Path(".env")):
        typer.echo(
            "countersign: no configuration found, so wrote .env with fresh development secrets "
            "(git-ignored)."
        )
    if _settings().slack_configured:
        serve(host=host, port=port, socket_mode=False, no_workers=False)
        return
    typer.echo(
        "countersign: Slack is not configured (SLACK_BOT_TOKEN is unset in .env), so this is "
        "the sandbox; set it to run the service against Slack (countersign serve)."
    )
    sandbox(host=host, port=port)


@cli.command()
def check() -> None:
    """Validate settings and policy and print the routing table; non-zero exit on any error."""
    from bot.policy import format_routing_table

    settings = _settings()
    policy = _policy(settings)
    source = settings.policy_path or "built-in defaults"
    typer.echo(f"Settings: ok. Database: {settings.database_url.split('@')[-1]}")
    typer.echo(
        f"Slack: {'configured' if settings.slack_configured else 'not configured (cards wait)'}"
    )
    typer.echo(f"Policy: {source}\n")
    typer.echo(format_routing_table(policy))


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from storage.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    typer.echo("countersign: database is up to date")


def main() -> None:
    """Console-script entry point."""
    cli()
