"""Admins manage departments, members and quotas over REST and with the CLI; users may not."""

from __future__ import annotations

import json

import pytest

from tests.system import System
from tests.users import ENV, as_service, as_user


@pytest.fixture
def system_env(system_env: dict[str, str]) -> dict[str, str]:
    """The `agentbus up` of these tests verifies their tokens and takes their API key."""
    return {**system_env, **ENV}


async def test_an_admin_manages_departments_over_rest_and_a_user_may_not(system: System) -> None:
    admin = as_user(system, "root", role="admin")
    admin.base_url = system.http_url + "/api/v1/admin"
    async with admin, as_user(system, "ada") as ada:
        created = await admin.post("/departments", json={"department_id": "research", "name": "Research"})
        assert created.status_code == 200 and created.json()["name"] == "Research"
        await admin.put("/departments/research/members/ada")
        quota = await admin.put("/departments/research/quotas/tokens/day", json={"limit": 5000})
        assert quota.json()["members"] == ["ada"]
        assert quota.json()["quotas"] == [
            {"department_id": "research", "quota_type": "tokens", "period": "day", "limit": 5000, "current": 0}
        ]
        assert (await admin.put("/departments/nowhere/members/ada")).json()["code"] == "unknown_department"
        assert (await admin.put("/departments/research/quotas/tokens/year", json={"limit": 1})).status_code == 404
        removed = await admin.put("/departments/research/quotas/tokens/day", json={"limit": None})
        assert removed.json()["quotas"] == []
        ada.base_url = admin.base_url
        assert (await ada.get("/departments")).status_code == 403
        assert (await ada.put("/departments/research/quotas/tokens/day", json={"limit": 10**9})).status_code == 403
    # The API key is the service's credential: it manages them too.
    async with as_service(system) as service:
        service.base_url = system.http_url + "/api/v1/admin"
        assert [d["department_id"] for d in (await service.get("/departments")).json()] == ["research"]


async def test_the_cli_records_department_changes_that_the_admin_api_shows(system: System) -> None:
    assert system.run_cli("departments", "create", "ops", "--name", "Operations").returncode == 0
    done = system.run_cli("departments", "quota", "ops", "requests", "month", "300")
    assert done.returncode == 0 and json.loads(done.stdout)["quotas"][0]["limit"] == 300
    refused = system.run_cli("departments", "add-member", "nowhere", "ada")
    assert refused.returncode == 2 and "does not exist" in refused.stdout
    async with as_service(system) as service:
        service.base_url = system.http_url + "/api/v1/admin"
        [ops] = (await service.get("/departments")).json()
    assert ops["name"] == "Operations" and ops["quotas"][0]["period"] == "month"
