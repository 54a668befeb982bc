"""Providers for the configured LLM endpoints, and the fallback tiers of an agent."""

from __future__ import annotations

import os

from ..config import Config
from .fallback import Tier
from .openai import OpenAIProvider
from .protocol import Provider


def build_providers(config: Config, offline: Provider) -> dict[str, Provider]:
    """One provider per endpoint name; `offline` serves every offline endpoint (and `default` if unset)."""
    providers: dict[str, Provider] = {"default": offline}
    for name, endpoint in config.llm.items():
        if endpoint.kind == "openai" and endpoint.base_url:
            api_key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
            providers[name] = OpenAIProvider(
                endpoint.base_url, api_key=api_key, timeout=endpoint.timeout, name=f"openai:{name}"
            )
        else:
            providers[name] = offline
    return providers


def tiers(
    config: Config, providers: dict[str, Provider], llm: str, fallback: list[str], model: str | None
) -> list[Tier]:
    """The chain for an agent: its endpoint (`model` overrides the endpoint's), then each fallback endpoint."""

    def endpoint_model(name: str) -> str:
        endpoint = config.llm.get(name)
        return endpoint.model if endpoint is not None else "offline"

    chain = [Tier(name="main", provider=providers[llm], model=model or endpoint_model(llm))]
    chain += [Tier(name="recovery", provider=providers[name], model=endpoint_model(name)) for name in fallback]
    return chain


async def close_providers(providers: dict[str, Provider]) -> None:
    """Close the HTTP clients of the providers that hold one."""
    for provider in {id(p): p for p in providers.values()}.values():
        if isinstance(provider, OpenAIProvider):
            await provider.aclose()
