"""The language model as a Dagster resource: any OpenAI-compatible endpoint through the openai SDK."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import dagster as dg
import openai
from openai import OpenAI
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

log = logging.getLogger(__name__)

# Timeouts, dropped connections, 429 and 5xx: worth another try. 4xx other than 429 is our fault and is not.
RETRIED_ERRORS = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                  openai.InternalServerError)


@dataclass(frozen=True)
class Completion:
    """A chat completion's text, token use and how many attempts it took."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int = 1


class LlmResource(dg.ConfigurableResource):
    """Chat completions from ``base_url`` (OpenRouter by default) with the key read from ``api_key_env``.

    The key is read from the environment at call time, so it never appears in resource config, run config
    or the UI. ``timeout_s`` bounds each attempt's connect and each read and write (httpx timeouts: a server
    that keeps trickling bytes can hold an attempt longer); timeouts, connection errors, 429 and 5xx are
    retried after each of ``retry_waits_s`` (2 s, then 4 s), then the last error is raised (an
    ``openai.APIError`` subclass) and the caller composes the note without the model. Prices are USD per
    million tokens, for the cost estimate in run metadata (the defaults are gpt-4o-mini's list prices).
    """

    base_url: str = "https://openrouter.ai/api/v1"
    api_key_env: str = "LLM_API_KEY"
    model: str = "openai/gpt-4o-mini"
    temperature: float = 0.3
    max_tokens: int = 1000
    timeout_s: float = 30.0
    retry_waits_s: list[float] = [2.0, 4.0]
    prompt_usd_per_mtok: float = 0.15
    completion_usd_per_mtok: float = 0.60

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def configured(self) -> bool:
        """True when a key is set; without one the pipeline composes deterministic notes."""
        return self.api_key is not None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated cost of a completion in US dollars, from the configured prices."""
        return (prompt_tokens * self.prompt_usd_per_mtok + completion_tokens * self.completion_usd_per_mtok) / 1e6

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One chat completion. Raises ``RuntimeError`` without a key, ``openai.APIError`` on failure."""
        key = self.api_key
        if key is None:
            raise RuntimeError(f"no LLM key: set {self.api_key_env}")
        # The SDK's own retries would wait its own backoff (0.5-8 s, jittered); ours are the documented 2 s, 4 s.
        client = OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=0)
        waits = list(self.retry_waits_s)
        retrying = Retrying(
            stop=stop_after_attempt(len(waits) + 1),
            wait=lambda state: waits[min(state.attempt_number, len(waits)) - 1] if waits else 0,
            retry=retry_if_exception_type(RETRIED_ERRORS),
            before_sleep=lambda state: log.warning("LLM call failed (attempt %d), retrying: %s",
                                                   state.attempt_number, type(state.outcome.exception()).__name__),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = client.chat.completions.create(
                        model=self.model, messages=messages, temperature=self.temperature,
                        max_tokens=self.max_tokens)
        finally:
            client.close()
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        usage = response.usage
        return Completion(text=text, model=response.model or self.model,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          attempts=retrying.statistics.get("attempt_number", 1))
