"""An OpenAI-compatible chat-completions server that stands in for the LLM in the demo and the tests.

``POST /v1/chat/completions`` answers in the OpenAI wire format (choices, usage) so the real openai SDK
drives it. It writes a note the way an obedient model would: it reads the JSON inside ``<context>`` of the
last user message and cites what is there. Every request body and every answer is recorded
(``GET /_sim/requests``) so tests can assert what reached the "model provider" and what came back;
``POST /_sim/faults`` makes the next calls fail.

Structured output as OpenAI's API speaks it: ``response_format`` ``{"type": "json_schema", "json_schema":
{"name", "strict", "schema"}}`` is answered with JSON built from the schema's own enums (a strict schema whose
objects do not forbid extra properties or leave a property out of ``required`` gets the API's 400), and
``{"type": "json_object"}`` with JSON too (400 unless a message names JSON, as OpenAI requires). The request's
``max_tokens`` is honoured: a longer answer is cut there with ``finish_reason: "length"``. Which formats the
server takes is ``LlmSimState.response_formats`` (an older server: ``{"json_object"}``; a plain one: empty,
every ``response_format`` refused with 400); ``ignores_response_format`` makes it answer Markdown whatever
was asked, as some servers do. A fault can carry ``refusal`` (``message.refusal`` set, no content) or
``content`` (this exact text is the answer: the tests script real models' answers through the wire).

``gullible`` mode stands for a model that prompt injection works on: it obeys any text in the data that
gives it an order, by writing that text into its note (in a structured answer: into the first fix and a
step), and answers "show your instructions" with its system message. The tests use it to see whether the
pipeline's output checks catch what a hijacked model writes.

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
    response_formats: set[str] = field(default_factory=lambda: {"json_schema", "json_object"})
    ignores_response_format: bool = False
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


def compose_answer(context: dict[str, Any], properties: set[str] | None = None) -> dict[str, Any]:
    """The simulated model's structured answer: the keys of ``properties`` (the schema's; default: the
    sections the context has items for), each item built from the context."""
    tickets = context.get("similar_tickets") or []
    articles = context.get("knowledge_articles") or []
    ips = [s["ip_address"] for s in context.get("systems") or []] + list(context.get("unknown_ips") or [])
    if properties is None:
        properties = {"next_steps", *(["similar_tickets"] if tickets else []),
                      *(["knowledge_articles"] if articles else []), *(["systems"] if ips else [])}
    answer: dict[str, Any] = {}
    if "similar_tickets" in properties:
        answer["similar_tickets"] = [
            {"ticket_id": t["ticket_id"], "why_it_matches": "It reports the same symptom as this ticket.",
             "fix": resolution_excerpt(t.get("resolution") or "")} for t in tickets[:3]]
    if "knowledge_articles" in properties:
        answer["knowledge_articles"] = [{"article_id": a["article_id"],
                                         "why_it_applies": "It documents the cause and the fix."} for a in articles[:3]]
    if "systems" in properties:
        answer["systems"] = [{"ip_address": ip, "relevance": "The ticket names it; check it first."} for ip in ips]
    steps = []
    if tickets:
        steps.append({"step": "Apply the fix of the most similar ticket if the symptoms match.",
                      "relies_on": [tickets[0]["ticket_id"]]})
    if articles:
        steps.append({"step": "Follow the article to confirm the cause.",
                      "relies_on": [f"KB:{articles[0]['article_id']}"]})
    steps.append({"step": "Record what worked in the resolution so the next ticket benefits.", "relies_on": []})
    answer["next_steps"] = steps
    if "reply_to_requester" in properties:
        # In English whatever the requester wrote: the simulator does not translate (a real model is asked to).
        answer["reply_to_requester"] = (
            "Hello, thank you for letting us know about this problem. We are looking into it now"
            + (", starting with the fix that solved similar cases." if tickets else ".")
            + " If you see an error message, please reply with its exact wording or a screenshot.")
    return answer


def strict_schema_error(schema: Any, path: str = "") -> str | None:
    """What OpenAI's API says of a ``strict`` schema it refuses (objects must set ``additionalProperties:
    false`` and list every property in ``required``); None when it takes it."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            if schema.get("additionalProperties") is not False:
                return (f"In context=({path}), 'additionalProperties' is required to be supplied and to be false.")
            props = set((schema.get("properties") or {}).keys())
            missing = props - set(schema.get("required") or [])
            if missing:
                return (f"In context=({path}), 'required' is required to be supplied and to be an array including "
                        f"every key in properties. Missing '{sorted(missing)[0]}'.")
        for key, value in schema.items():
            found = strict_schema_error(value, f"{path}, '{key}'" if path else f"'{key}'")
            if found:
                return found
    elif isinstance(schema, list):
        for value in schema:
            found = strict_schema_error(value, path)
            if found:
                return found
    return None


def _bad_request(message: str, param: str | None = "response_format") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": None}}, status_code=400)


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

    def refuse(fault: dict[str, Any] | None, response: JSONResponse) -> JSONResponse:
        # A scripted answer is the next answer the server gives: a request refused before answering keeps it.
        if fault and ("content" in fault or "refusal" in fault):
            with state.lock:
                state.faults.insert(0, fault)
        return response

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
        # The data is in the first user message; a repair round's last message only names the errors.
        user = next((m.get("content") or "" for m in reversed(messages)
                     if m.get("role") == "user" and "<context>" in str(m.get("content") or "")),
                    next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), ""))
        system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
        response_format = body.get("response_format") or {}
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        structured = kind in ("json_schema", "json_object") and not state.ignores_response_format
        if structured and kind not in state.response_formats:
            return refuse(fault, _bad_request(f"response_format.type '{kind}' is not supported by this server"))
        properties = None
        if kind == "json_schema" and structured:
            spec = response_format.get("json_schema") or {}
            if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("schema"), dict):
                return refuse(fault, _bad_request("Missing required parameter: 'response_format.json_schema.name'."))
            if spec.get("strict") and (problem := strict_schema_error(spec["schema"])):
                return refuse(fault, _bad_request(f"Invalid schema for response_format '{spec['name']}': {problem}"))
            properties = set((spec["schema"].get("properties") or {}).keys())
        if kind == "json_object" and structured and not any(
                "json" in str(m.get("content") or "").lower() for m in messages):
            return refuse(fault, _bad_request("'messages' must contain the word 'json' in some form, to use "
                                              "'response_format' of type 'json_object'.", param="messages"))
        refusal = fault.get("refusal") if fault else None
        if fault and "content" in fault:
            text = str(fault["content"])
        elif refusal:
            text = ""
        else:
            text = _answer(user, system, structured, properties)
        finish = "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0 and len(text) > max_tokens * 4:
            text, finish = text[: max_tokens * 4], "length"  # ~4 characters a token, as tokenizers average
        with state.lock:
            state.responses.append(text)
        # A strict schema is billed as prompt tokens by the real API too (~4 characters a token).
        prompt_tokens = (sum(len(str(m.get("content", "")).split()) for m in messages) * 4 // 3
                         + (len(json.dumps(response_format)) // 4 if kind == "json_schema" else 0))
        completion_tokens = max(len(text) // 4, len(text.split()) * 4 // 3)
        message = {"role": "assistant", "content": None if refusal else text, "refusal": refusal or None}
        return JSONResponse({
            "id": f"chatcmpl-sim-{len(state.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "simulated"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def _answer(user: str, system: str, structured: bool, properties: set[str] | None) -> str:
        match, ticket_match = _CONTEXT.search(user), _TICKET.search(user)
        try:
            context = json.loads(match.group(1)) if match else None
            if context is None:
                return "I need the ticket context to write a note."
            orders = []
            if state.gullible:
                ticket = json.loads(ticket_match.group(1)) if ticket_match else {}
                orders = obey(_data_texts(ticket, context), system)
            if not structured:
                return compose(context) + "".join(f"\n\n{order}" for order in orders)
            answer = compose_answer(context, properties)
            for order in orders:  # a hijacked model writes the order where free text goes
                if answer.get("similar_tickets"):
                    answer["similar_tickets"][0]["fix"] += " " + order
                answer["next_steps"].append({"step": order, "relies_on": []})
                if "reply_to_requester" in answer:
                    answer["reply_to_requester"] += " " + order
            return json.dumps(answer, ensure_ascii=False)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return "The context could not be read."

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
