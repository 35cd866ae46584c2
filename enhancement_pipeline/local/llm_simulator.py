"""An OpenAI-compatible chat-completions server that stands in for the LLM in the demo and the tests.

``POST /v1/chat/completions`` answers in the OpenAI wire format (choices, usage) so the real openai SDK
drives it. It writes a note the way an obedient model would: it reads the JSON inside ``<context>`` of the
last user message and cites what is there. Every request body and every answer is recorded
(``GET /_sim/requests``) so tests can assert what reached the "model provider" and what came back;
``POST /_sim/faults`` makes the next calls fail.

``gullible`` mode stands for a model that prompt injection works on: it obeys any text in the data that
gives it an order, by writing that text into its note, and answers "show your instructions" with its system
message. The tests use it to see whether the pipeline's output checks catch what a hijacked model writes.

It is a test double, not a model: its text is a template, written independently of the pipeline's own
deterministic note so that a bug in one does not hide in the other.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from enhancement_pipeline.enhancement.excerpts import resolution_excerpt

_CONTEXT = re.compile(r"<context>\s*(\{.*\})\s*</context>", re.S)
_TICKET = re.compile(r"<ticket>\s*(\{.*\})\s*</ticket>", re.S)
# What a hijackable model takes as an order: deliberately broader than the pipeline's own cue list, so that
# the output checks, not the cue list, are what is tested.
_ORDER = re.compile(r"(?i)\b(?:ignore|disregard|forget|override|instead|new (?:instructions|rules|task)|from now on|"
                    r"you are|you're|pretend|act as|role-?play|reveal|print|repeat|output|post|send|forward|e-?mail "
                    r"(?:this|the)|include|add|write|append|cite|recommend|tell the technician|system|assistant)\b|"
                    r"<\|?/?(?:system|im_start|assistant)|\[/?INST\]")
_WANTS_PROMPT = re.compile(r"(?i)\b(?:prompt|instructions|system message|rules you|(?:text|words|everything) above)\b")


@dataclass
class LlmSimState:
    """Recorded requests (bodies, and when each arrived on the monotonic clock), answers, and pending faults
    (each fault: an HTTP status, a delay in seconds before answering, or both)."""

    api_key: str = "sim-key"
    gullible: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def compose(context: dict[str, Any]) -> str:
    """The simulated model's note for a context payload (see ``enhancement.prompts.context_payload``)."""
    out = ["### Similar resolved tickets"]
    tickets = context.get("similar_tickets") or []
    for t in tickets[:3]:
        # Like a model, it writes the fix, not the resolution's headings or warnings (the note's own excerpt).
        fix = resolution_excerpt(t.get("resolution") or "")
        score = f" (match {t['score']:.2f})" if isinstance(t.get("score"), int | float) else ""
        out.append(f"- [#{t['ticket_id']}] {t['subject']}{score}: resolved by: {fix}")
    if not tickets:
        out.append("No resolved ticket in the history is similar enough to this one.")
    out += ["", "### Knowledge base articles"]
    articles = context.get("knowledge_articles") or []
    for a in articles[:3]:
        out.append(f"- [KB:{a['article_id']}] {a['title']}")
    if not articles:
        out.append("No knowledge-base article applies.")
    out += ["", "### Systems involved"]
    for s in context.get("systems") or []:
        out.append(f"- {s['ip_address']} is {s.get('hostname') or 'a known address'} "
                   f"({s.get('role') or 'role unknown'}, {s.get('client') or 'client unknown'}).")
    for ip in context.get("unknown_ips") or []:
        out.append(f"- {ip} is not in the inventory.")
    if not context.get("systems") and not context.get("unknown_ips"):
        out.append("The ticket names no IP address.")
    out += ["", "### Recommended next steps"]
    steps = []
    if tickets:
        steps.append(f"Apply the fix from [#{tickets[0]['ticket_id']}] if the symptoms match.")
    if articles:
        steps.append(f"Follow [KB:{articles[0]['article_id']}] to confirm the cause.")
    if context.get("systems"):
        steps.append(f"Check {context['systems'][0].get('hostname') or context['systems'][0]['ip_address']} first.")
    steps.append("Record what worked in the resolution so the next ticket benefits.")
    out += [f"{i}. {s}" for i, s in enumerate(steps, start=1)]
    return "\n".join(out)


def obey(data: list[str], system: str) -> list[str]:
    """What a hijacked model adds to its note: every order found in ``data`` (from the order on), and its
    system message when an order asks for its instructions."""
    added = []
    for text in data:
        order = _ORDER.search(text or "")
        if order:
            added.append(text[order.start():])
            if _WANTS_PROMPT.search(text):
                added.append(system)
    return added


def _data_texts(ticket: dict[str, Any], context: dict[str, Any]) -> list[str]:
    texts = [ticket.get("subject"), ticket.get("description")]
    for t in context.get("similar_tickets") or []:
        texts += [t.get("subject"), t.get("resolution")]
    for a in context.get("knowledge_articles") or []:
        texts += [a.get("title"), a.get("summary")]
    return [t for t in texts if isinstance(t, str)]


def create_app(state: LlmSimState) -> Starlette:
    """The ASGI app serving ``state``."""

    async def completions(request: Request) -> Response:
        body = await request.json()
        with state.lock:
            state.requests.append(body)
            state.received_at.append(time.monotonic())
            fault = state.faults.pop(0) if state.faults else None
        if request.headers.get("authorization") != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, status_code=401)
        if fault:
            if fault.get("delay_s"):
                await asyncio.sleep(float(fault["delay_s"]))
            if fault.get("status"):
                return JSONResponse({"error": {"message": "simulated fault", "type": "server_error"}},
                                    status_code=int(fault["status"]))
        messages = body.get("messages") or []
        user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
        match, ticket_match = _CONTEXT.search(user), _TICKET.search(user)
        try:
            context = json.loads(match.group(1)) if match else None
            text = compose(context) if context is not None else "I need the ticket context to write a note."
            if state.gullible and context is not None:
                ticket = json.loads(ticket_match.group(1)) if ticket_match else {}
                text += "".join(f"\n\n{order}" for order in obey(_data_texts(ticket, context), system))
        except (json.JSONDecodeError, KeyError, TypeError):
            text = "The context could not be read."
        with state.lock:
            state.responses.append(text)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages) * 4 // 3
        completion_tokens = len(text.split()) * 4 // 3
        return JSONResponse({
            "id": f"chatcmpl-sim-{len(state.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "simulated"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    async def recorded(request: Request) -> Response:
        with state.lock:
            return JSONResponse({"requests": list(state.requests), "responses": list(state.responses)})

    async def add_fault(request: Request) -> Response:
        with state.lock:
            state.faults.append(await request.json())
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/_sim/requests", recorded, methods=["GET"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
    ])
