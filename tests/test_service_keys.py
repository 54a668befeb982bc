"""`AGENTBUS_SERVICE_KEYS` names each service's public nkey; a mistake in it stops the start, naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.credentials import new_seed_file
from cli.settings import SERVICE_KEYS_ENV, Settings, format_service_keys, parse_service_keys

KEY = "U" + "A" * 55
names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
keys = st.from_regex(r"U[A-Z2-7]{55}", fullmatch=True)


@given(st.dictionaries(names, keys, max_size=5).filter(lambda named: len(set(named.values())) == len(named)))
def test_what_format_writes_parse_reads_back(named: dict[str, str]) -> None:
    assert parse_service_keys(format_service_keys(named)) == named


def test_spaces_and_empty_entries_are_ignored(tmp_path: Path) -> None:
    billing = new_seed_file(tmp_path / "billing.nk").public_key
    assert parse_service_keys(f" billing = {billing} ,, ") == {"billing": billing}
    assert parse_service_keys("") == {}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (KEY, "is not name=U"),  # a key without its name
        ("billing=", "is not name=U"),
        ("billing=SUAAAA", "is not name=U"),  # a seed, not a public key
        (f"bill.ing={KEY}", "is not name=U"),
        (f"billing={KEY},billing=U{'B' * 55}", "repeats a name or a key"),
        (f"billing={KEY},crm={KEY}", "repeats a name or a key"),
    ],
)
def test_a_malformed_entry_stops_the_start_naming_it(value: str, why: str) -> None:
    with pytest.raises(SystemExit, match=f"{SERVICE_KEYS_ENV}: .*{why}"):
        parse_service_keys(value)


def test_a_key_both_a_gateways_and_a_services_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_GATEWAY_KEYS", KEY)
    monkeypatch.setenv(SERVICE_KEYS_ENV, f"billing={KEY}")
    with pytest.raises(SystemExit, match="in both AGENTBUS_GATEWAY_KEYS and AGENTBUS_SERVICE_KEYS"):
        Settings.from_env()
    monkeypatch.setenv(SERVICE_KEYS_ENV, f"billing=U{'B' * 55}")
    assert Settings.from_env().service_keys == {"billing": "U" + "B" * 55}
