"""One database per tenant: a database serves the subject prefix that first opened it, and refuses any other."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import TenantMismatch
from projections.tenant import claim_tenant
from tests.system import AGENTBUS


async def test_the_first_prefix_claims_the_database_and_another_is_refused_naming_both(engine: AsyncEngine) -> None:
    await claim_tenant(engine, "acme")
    await claim_tenant(engine, "acme")  # the same tenant again: nothing to say
    with pytest.raises(TenantMismatch) as refused:
        await claim_tenant(engine, "globex")
    assert (refused.value.owner, refused.value.prefix) == ("acme", "globex")
    assert "each prefix needs a database of its own" in str(refused.value)


def run(command: str, tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTBUS, command, "--data-dir", str(tmp_path / "none"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_a_gateway_and_a_command_of_another_prefix_refuse_the_database_at_once(
    tmp_path: Path, nats_url: str, fresh_database_url: str
) -> None:
    """Each exits with an error that names both prefixes and what to do, before it touches NATS or the log."""
    env = {"AGENTBUS_NATS_URL": nats_url, "AGENTBUS_DATABASE_URL": fresh_database_url}
    assert run("migrate", tmp_path, {**env, "AGENTBUS_SUBJECT_PREFIX": "acme"}).returncode == 0
    other = {**env, "AGENTBUS_SUBJECT_PREFIX": "globex"}
    for command, args in [("worker", ()), ("gateway", ("--port", "0")), ("migrate", ()), ("erase", ("s1",))]:
        result = run(command, tmp_path, other, *args)
        assert result.returncode == 1, (command, result.stderr[-2000:])
        assert "belongs to the subject prefix 'acme', not 'globex'" in result.stderr, command
        assert "AGENTBUS_DATABASE_URL" in result.stderr and "AGENTBUS_SUBJECT_PREFIX=acme" in result.stderr
    assert run("migrate", tmp_path, {**env, "AGENTBUS_SUBJECT_PREFIX": "acme"}).returncode == 0
