"""Tracing is off by default and then costs nothing; the standard OTEL_* variables turn it on, or stop a bad start."""

from __future__ import annotations

import pytest

from bus import tracing
from cli.tracing import exporters_named, start_tracing


def test_off_by_default_every_helper_is_a_no_op_and_adds_no_header() -> None:
    assert not tracing.enabled()
    for span in (tracing.root("r"), tracing.child("c"), tracing.following("f", None)):
        with span as entered:
            assert not entered.is_recording()
    headers = {"Nats-Msg-Id": "s:k"}
    assert tracing.inject(headers) is headers
    assert tracing.inject() is None
    assert tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}) is None
    assert tracing.from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") is None
    assert tracing.captured() is None


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": " OTLP , console "}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_tracing_is_on_only_when_otel_traces_exporter_names_an_exporter(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: list[str]
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert exporters_named() == named


def test_an_unknown_exporter_stops_the_start_naming_the_ones_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(SystemExit, match=r"'jaeger'.*otlp, console"):
        exporters_named()


def test_otlp_over_grpc_stops_the_start_before_any_provider_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(SystemExit, match="http/protobuf"):
        start_tracing("agentbus-test")
    assert not tracing.enabled()
