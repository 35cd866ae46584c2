"""The language model as a Dagster resource: any OpenAI-compatible endpoint through the openai SDK.

A note is asked for as structured output and every endpoint still gets an answer (``LlmResource.answer``):

1. ``response_format`` ``json_schema`` (strict) with the ticket's answer model (``answer.py``);
2. where the endpoint rejects that (HTTP 400/422), ``json_object`` with the schema in the prompt;
3. where it rejects that too, the Markdown prompt (the answer is checked and arranged as Markdown);
4. and the caller composes the deterministic note when all of it fails.

On rungs 1 and 2 an answer that is not valid JSON for the model gets one repair round (the validation errors
are sent back); when the repair fails too, the Markdown prompt is tried. A refusal (``message.refusal``) and
an answer cut at ``max_tokens`` (``finish_reason: length``) end the ladder: the next rung would refuse or be
cut as well, so the caller writes the deterministic note with that reason. An answer that is not JSON at all
means the endpoint ignores ``response_format``: the Markdown prompt is next. Timeouts, 429 and 5xx are
retried on the same rung and then raised. Nothing is remembered between calls (each run is its own process
and writes one note): pin ``structured_output`` for an endpoint known to reject a rung.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import openai
from openai import DefaultHttpxClient, OpenAI
from pydantic import BaseModel, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from enhancement_pipeline.enhancement.answer import strict_schema
from enhancement_pipeline.tls import tls_context

log = logging.getLogger(__name__)

# Timeouts, dropped connections, 429 and 5xx: worth another try. 4xx other than 429 is our fault and is not.
RETRIED_ERRORS = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                  openai.InternalServerError)


Rung = Literal["json_schema", "json_object", "markdown"]
RUNGS: tuple[Rung, ...] = ("json_schema", "json_object", "markdown")


@dataclass(frozen=True)
class Completion:
    """A chat completion's text, token use and how many attempts it took.

    From ``LlmResource.answer``: ``answer`` is the validated answer model (rungs 1-2) or None (the Markdown
    rung: ``text`` is Markdown; or no usable answer: ``refusal`` or ``finish_reason == "length"`` say why);
    ``rung`` is the one that answered; ``steps`` says, in order, what each rung did (for the run's metadata);
    token counts and attempts add up every call made.
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int = 1
    answer: BaseModel | None = None
    rung: Rung | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteRequest:
    """What ``LlmResource.answer`` needs: the structured prompt, the ticket's answer model, and the Markdown
    prompt for endpoints that take no response format (``prompts.build_messages`` / ``markdown_messages``)."""

    messages: list[dict[str, str]]
    answer_type: type[BaseModel]
    markdown_messages: list[dict[str, str]]
    json_object_messages: list[dict[str, str]] = field(default_factory=list)
    repair: Callable[[list[dict[str, str]], str, str], list[dict[str, str]]] | None = None
    """``repair(messages, bad_answer, errors) -> messages``: the repair round's prompt."""


class _Tally:
    def __init__(self) -> None:
        self.prompt = self.completion = self.attempts = 0
        self.model: str | None = None
        self.steps: list[str] = []
        self.skip: set[Rung] = set()  # rungs this endpoint has shown it cannot answer

    def add(self, response, attempts: int) -> None:
        self.attempts += attempts
        self.model = response.model or self.model
        if response.usage:
            self.prompt += response.usage.prompt_tokens or 0
            self.completion += response.usage.completion_tokens or 0


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
    structured_output: Literal["auto", "json_schema", "json_object", "markdown"] = "auto"
    """Where the ladder starts: "auto" tries json_schema first; pin a lower rung for an endpoint known not
    to take it (saves one rejected call per run)."""

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
        client = self._client()
        try:
            response, attempts = self._create(client, messages)
        finally:
            client.close()
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        usage = response.usage
        return Completion(text=text, model=response.model or self.model,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          attempts=attempts)

    def answer(self, request: NoteRequest) -> Completion:
        """The note's answer down the ladder of the module docstring, starting at ``structured_output``.

        Raises ``RuntimeError`` without a key and ``openai.APIError`` when a call fails for another reason than
        the endpoint rejecting a response format (after the retries); a refusal or a cut answer is returned
        (``Completion.refusal`` / ``finish_reason``), not raised.
        """
        client = self._client()
        tally = _Tally()
        start = RUNGS.index(self.structured_output) if self.structured_output != "auto" else 0
        try:
            for rung in RUNGS[start:]:
                if rung in tally.skip:
                    tally.steps.append(f"{rung}: skipped")
                    continue
                done = self._rung(client, rung, request, tally)
                if done is not None:
                    return done
        finally:
            client.close()
        return self._result(tally, "", None, None, finish_reason=None, refusal=None)

    def _rung(self, client: OpenAI, rung: Rung, request: NoteRequest, tally: _Tally) -> Completion | None:
        """One rung: a Completion when it ends the ladder, None to go on to the next."""
        if rung == "markdown":
            response, attempts = self._create(client, request.markdown_messages)
            tally.add(response, attempts)
            choice = response.choices[0] if response.choices else None
            text = ((choice.message.content or "") if choice else "").strip()
            tally.steps.append(f"markdown: {choice.finish_reason if choice else 'no choice'}")
            if choice is not None and choice.finish_reason == "length":
                return self._result(tally, "", None, rung, finish_reason="length", refusal=None)
            return self._result(tally, text, None, rung, finish_reason=choice.finish_reason if choice else None,
                                refusal=getattr(choice.message, "refusal", None) if choice else None)
        messages = request.messages if rung == "json_schema" else (request.json_object_messages or request.messages)
        schema = strict_schema(request.answer_type)
        response_format = ({"type": "json_schema", "json_schema": {"name": "ticket_note", "strict": True,
                                                                   "schema": schema}}
                           if rung == "json_schema" else {"type": "json_object"})
        for round_ in ("first", "repair"):
            try:
                response, attempts = self._create(client, messages, response_format=response_format)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if round_ == "repair":
                    tally.steps.append(f"{rung}: repair rejected (HTTP {exc.status_code})")
                    return None
                tally.steps.append(f"{rung}: rejected by the endpoint (HTTP {exc.status_code})")
                return None
            tally.add(response, attempts)
            choice = response.choices[0] if response.choices else None
            if choice is None:
                tally.steps.append(f"{rung}: no choice in the answer")
                return None
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                tally.steps.append(f"{rung}: refused")
                return self._result(tally, "", None, rung, finish_reason=choice.finish_reason, refusal=refusal)
            if choice.finish_reason == "length":
                tally.steps.append(f"{rung}: cut at max_tokens")
                return self._result(tally, "", None, rung, finish_reason="length", refusal=None)
            content = _unfenced(choice.message.content or "")
            if not content.startswith("{"):
                # Not JSON at all: the endpoint ignored response_format (some do, silently), so the next JSON
                # rung would be ignored too; the Markdown prompt is what it can answer.
                tally.skip.add("json_object")
                tally.steps.append(f"{rung}: the answer is not JSON (the endpoint ignores response_format)")
                return None
            try:
                answer = request.answer_type.model_validate_json(content)
            except ValidationError as exc:
                errors = _errors(exc)
                tally.steps.append(f"{rung}: {'invalid' if round_ == 'first' else 'still invalid after repair'} "
                                   f"({len(exc.errors())} error(s))")
                if round_ == "repair" or request.repair is None:
                    # The endpoint took the schema and still answered wrong: json_object would only repeat that.
                    tally.skip.add("json_object")
                    return None
                messages = request.repair(messages, content, errors)
                continue
            tally.steps.append(f"{rung}: valid" + (" after repair" if round_ == "repair" else ""))
            return self._result(tally, content, answer, rung, finish_reason=choice.finish_reason, refusal=None)
        return None

    def _result(self, tally: _Tally, text: str, answer: BaseModel | None, rung: Rung | None, *,
                finish_reason: str | None, refusal: str | None) -> Completion:
        return Completion(text=text, model=tally.model or self.model, prompt_tokens=tally.prompt,
                          completion_tokens=tally.completion, attempts=tally.attempts, answer=answer, rung=rung,
                          refusal=refusal, finish_reason=finish_reason, steps=tuple(tally.steps))

    def _client(self) -> OpenAI:
        key = self.api_key
        if key is None:
            raise RuntimeError(f"no LLM key: set {self.api_key_env}")
        # The SDK's own retries would wait its own backoff (0.5-8 s, jittered); ours are the documented 2 s, 4 s.
        return OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=0,
                      http_client=DefaultHttpxClient(verify=tls_context(), timeout=self.timeout_s))

    def _create(self, client: OpenAI, messages: list[dict[str, str]], **extra):
        """One chat completion with our retries: (response, attempts)."""
        waits = list(self.retry_waits_s)
        retrying = Retrying(
            stop=stop_after_attempt(len(waits) + 1),
            wait=lambda state: waits[min(state.attempt_number, len(waits)) - 1] if waits else 0,
            retry=retry_if_exception_type(RETRIED_ERRORS),
            before_sleep=lambda state: log.warning("LLM call failed (attempt %d), retrying: %s",
                                                   state.attempt_number, type(state.outcome.exception()).__name__),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response = client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature,
                    max_tokens=self.max_tokens, **extra)
        return response, retrying.statistics.get("attempt_number", 1)


_FENCED = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)


def _unfenced(content: str) -> str:
    """The JSON object in ``content``: the inside of the first Markdown code fence some models put round it
    even in JSON mode (with words before or after the fence), else the text from the first ``{`` to the
    last ``}`` ("Here is the note: {...}"). A cut answer keeps its start, so it still reads as JSON (and
    fails validation, not the "not JSON" test)."""
    text = content.strip()
    fenced = _FENCED.search(text)
    if fenced and "{" in fenced.group(1):
        text = fenced.group(1).strip()
    if not text.startswith("{") and "{" in text:
        start, end = text.index("{"), text.rfind("}")
        text = text[start:end + 1] if end > start else text[start:]
    return text.strip()


def _errors(exc: ValidationError, limit: int = 12) -> str:
    """Pydantic's errors as short lines for the repair round (no input values: they are the model's own)."""
    lines = [f"- {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:limit]]
    return "\n".join(lines)
