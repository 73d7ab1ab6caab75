"""The `countersign` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from bot.errors import ConfigError
from bot.policy import Policy
from bot.settings import Settings, async_database_url, write_dev_env

cli = typer.Typer(
    help="Countersign: finance approvals for DialNexa calls, in Slack.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


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

    from bot.app import Deps, create_app
    from bot.logs import configure
    from storage.db import Database
    from storage.migrate import upgrade

    configure()
    if write_dev_env(Path(".env")):
        typer.echo(
            "countersign: no configuration found, so wrote .env with fresh development secrets "
            "(git-ignored). Add SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET there to connect Slack."
        )
    settings = _settings(socket_mode=socket_mode)
    policy = _policy(settings)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    deps = Deps(
        settings=settings,
        db=Database(async_database_url(settings.database_url)),
        policy=policy,
        socket_mode=socket_mode,
    )
    app = create_app(deps, workers=not no_workers)
    typer.echo(f"countersign: listening on http://{host}:{port} (POST /dialnexa/webhook)")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


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
