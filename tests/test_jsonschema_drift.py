"""The committed JSON Schemas (`schemas/jsonschema/`) are what the msgspec Structs generate, and stay so."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

from schemas import export, tag_of
from schemas.commands import SessionCommand
from schemas.envelope import FeedItem
from schemas.events import AnyEvent
from schemas.frames import AnyFrame

ROOT = Path(__file__).resolve().parents[1]


def committed(name: str) -> dict[str, typing.Any]:
    return json.loads((export.DIRECTORY / name).read_text())


def test_the_committed_schemas_are_exactly_what_the_structs_generate() -> None:
    stale = export.differences()
    assert not stale, f"schemas/jsonschema/ drifted from the Structs in {stale}: run `python -m schemas.export`"


def test_a_changed_struct_is_caught_as_drift(tmp_path: Path) -> None:
    """Drift is seen in either direction: a field the file lacks, and a file no family makes."""
    export.write(tmp_path)
    assert export.differences(tmp_path) == []
    events = json.loads((tmp_path / "events.json").read_text())
    del events["$defs"]["UserMessage"]["properties"]["idempotency_key"]
    (tmp_path / "events.json").write_text(json.dumps(events, indent=2) + "\n")
    (tmp_path / "gone.json").write_text("{}\n")
    assert export.differences(tmp_path) == ["events.json", "gone.json"]
    assert export.write(tmp_path) == ["events.json", "gone.json"]
    assert export.differences(tmp_path) == [] and not (tmp_path / "gone.json").exists()


def test_the_check_command_exits_1_on_drift_and_says_how_to_regenerate(tmp_path: Path) -> None:
    export.write(tmp_path)
    (tmp_path / "frames.json").write_text("{}\n")
    run = [sys.executable, "-m", "schemas.export", "--check", str(tmp_path)]
    failed = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "frames.json" in failed.stderr and "python -m schemas.export" in failed.stderr
    export.write(tmp_path)
    assert subprocess.run(run, cwd=ROOT, capture_output=True, timeout=60).returncode == 0


def test_every_union_member_is_in_its_family_by_its_wire_tag() -> None:
    for name, union in (
        ("commands.json", SessionCommand),
        ("events.json", AnyEvent),
        ("frames.json", AnyFrame),
        ("envelope.json", FeedItem),
    ):
        mapping = committed(name)["discriminator"]["mapping"]
        assert set(mapping) == {tag_of(member) for member in typing.get_args(union)}, name


def test_a_schema_is_draft_2020_12_with_every_reference_defined() -> None:
    for name in export.render():
        schema = committed(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        refs = set(_refs(schema))
        assert refs and refs <= {f"#/$defs/{key}" for key in schema["$defs"]}, name


def test_commands_and_requests_refuse_unknown_fields_as_their_decoders_do() -> None:
    assert committed("commands.json")["$defs"]["SendMessage"]["additionalProperties"] is False
    assert committed("requests.json")["$defs"]["ReadEvents"]["additionalProperties"] is False
    read = committed("requests.json")["$defs"]["ReadEvents"]["properties"]
    assert read["after"]["minimum"] == 0 and read["limit"] == {"type": "integer", "minimum": 1, "default": 100}


def _refs(node: object) -> typing.Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
