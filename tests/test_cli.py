"""The command line as an operator meets it: first run, check, and clear start-up errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import cli
from bot.settings import ENV_NAMES, write_dev_env

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.pop("COUNTERSIGN_TEST_DATABASE_URL", None)
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_env_is_written_once_with_fresh_secrets(tmp_path):
    target = tmp_path / ".env"
    assert write_dev_env(target, environ={}) is True
    first = target.read_text()
    assert "DIALNEXA_WEBHOOK_SECRET=dev_" in first
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert write_dev_env(target, environ={}) is False
    assert target.read_text() == first
    other = tmp_path / "other.env"
    assert write_dev_env(other, environ={"DIALNEXA_WEBHOOK_SECRET": "set"}) is False
    assert not other.exists()
    assert write_dev_env(tmp_path / "third.env", environ={}) is True
    assert (tmp_path / "third.env").read_text() != first


def test_check_prints_the_routing_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALNEXA_WEBHOOK_SECRET", "whsec_check")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "refund_request" in result.output and "C0REFUNDS" in result.output
    assert "whsec_check" not in result.output


def test_missing_secret_stops_with_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///./x.db\n")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "DIALNEXA_WEBHOOK_SECRET" in lines[0]


def test_a_broken_policy_stops_check_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIALNEXA_WEBHOOK_SECRET", "whsec_check")
    bad = tmp_path / "policy.yml"
    bad.write_text("intents:\n  refund_request:\n    channel: C0X\n    sla: 4 hours\n")
    monkeypatch.setenv("COUNTERSIGN_POLICY", str(bad))
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 2
    assert "sla" in result.output


def test_first_run_of_serve_writes_env_and_answers(tmp_path):
    """The README's run command on a fresh clone: no configuration, and it just starts."""
    port = free_port()
    proc = subprocess.Popen(
        [COUNTERSIGN, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer /healthz")
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert (tmp_path / ".env").exists()
    assert (tmp_path / "countersign.db").exists()
    assert "wrote .env" in output
    slack_lines = [line for line in output.splitlines() if "Slack is not configured" in line]
    assert len(slack_lines) == 1
    secret = next(
        line.split("=", 1)[1]
        for line in (tmp_path / ".env").read_text().splitlines()
        if line.startswith("DIALNEXA_WEBHOOK_SECRET=")
    )
    assert secret not in output


def test_socket_mode_needs_an_app_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALNEXA_WEBHOOK_SECRET", "whsec_check")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-placeholder")
    result = CliRunner().invoke(cli, ["serve", "--socket-mode"])
    assert result.exit_code == 2
    assert "SLACK_APP_TOKEN" in result.output


def _run_until(args: list[str], cwd: Path, env: dict[str, str], path: str) -> tuple[int, str]:
    port = free_port()
    proc = subprocess.Popen(
        [COUNTERSIGN, *args, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code
                if status != 0:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    return status, output


def test_up_on_a_fresh_clone_opens_the_sandbox(tmp_path):
    status, output = _run_until(["up"], tmp_path, clean_env(), "/sandbox")
    assert status == 200, output
    assert "wrote .env" in output
    assert "http://127.0.0.1:" in output and "/sandbox" in output


def test_up_with_slack_configured_runs_the_service_without_the_sandbox(tmp_path):
    env = clean_env(
        DIALNEXA_WEBHOOK_SECRET="whsec_up",
        SLACK_BOT_TOKEN="xoxb-placeholder",
        SLACK_SIGNING_SECRET="placeholder-signing-secret",
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )
    status, output = _run_until(["up"], tmp_path, env, "/sandbox")
    assert status == 404, output
    assert "listening on" in output
