"""The Inference API: `POST /models/<task>/<name>`, in the shape of Hugging Face Inference Endpoints, on
the app's own server beside Gradio's API (app.py adds these routes to Gradio's FastAPI app).

A request is what `huggingface_hub.InferenceClient` and the Hub's endpoints send:
- image and audio classification: the file's raw bytes (any content type but JSON), or JSON
  `{"inputs": "<the file in base64>", "parameters": {"top_k": k}}`;
- text classification: JSON `{"inputs": "<text>", "parameters": {"top_k": k}}`, or the text as text/plain.
The answer is `[{"label", "score"}, ...]`, best first, every label unless `top_k` says fewer (text
classification: inside a list with one entry per input, as the Hub answers). An error is `{"error": "..."}`
with 400 (an input that cannot be read), 404 (no such model), 413 (too large), 422 (parameters), 429 (too
many requests waiting) or 500 (a fault of ours, whose detail stays in the server's log): never a server
path or a traceback.

Limits, as the tabs have them: the upload size, `running` calls at once and `waiting` in line (the
app's CONCURRENCY and QUEUE_SIZE); past them a request is answered 429 at once, not queued without end.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from demo import memory
from demo.predictor import ModelSet, ModelUnavailable
from training.tasks import InputError, get_task

BINARY = ("image-classification", "audio-classification")   # pipeline tags whose inputs are files
NESTED = ("text-classification",)                            # answered as [[...]]: one list per input
PARAMETERS = ("top_k", "function_to_apply")
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request this API refuses: its HTTP status and the message the caller gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Gate:
    """At most `running` calls inside at once and `waiting` more in line; a call past both is refused at
    once. Used from the server's one event loop, so its count needs no lock."""

    def __init__(self, running: int, waiting: int):
        self.running, self.limit, self.inside = running, running + waiting, 0
        self.slots: asyncio.Semaphore | None = None

    async def __aenter__(self):
        if self.inside >= self.limit:
            raise ApiError(429, f"Too many requests: {self.limit - self.running} are already waiting. Try again "
                                "in a moment.")
        self.slots = self.slots or asyncio.Semaphore(self.running)
        self.inside += 1
        try:
            await self.slots.acquire()
        except BaseException:
            self.inside -= 1
            raise

    async def __aexit__(self, *exc):
        self.slots.release()
        self.inside -= 1


async def read_body(request, limit: int) -> bytes:
    """The request's body, counted while it is read: past `limit` bytes it is refused (413)."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, f"The request is over {limit / 2**20:.0f} MB, the largest upload this app takes.")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, content_type: str, binary: bool) -> tuple[object, int | None]:
    """(the raw input for `Predictor.predict`, top_k) from a request body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind != "application/json":
        if binary:
            return body, None
        if kind.startswith("text/"):
            return decode_text(body), None
        raise ApiError(400, 'Send JSON: {"inputs": "<text>", "parameters": {"top_k": 3}} (or text/plain).')
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise ApiError(400, 'Expected a JSON object with "inputs" (and optionally "parameters").')
    inputs = payload["inputs"]
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    if not isinstance(inputs, str):
        raise ApiError(400, '"inputs" must be one ' + ("file in base64" if binary else "text") + " per request.")
    return (from_base64(inputs) if binary else inputs), top_k_of(payload.get("parameters"))


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "The text is not UTF-8.") from None


def from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, '"inputs" is not base64: send the file\'s bytes as the body, or base64 in JSON.') from None


def top_k_of(parameters) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise ApiError(422, '"parameters" must be a JSON object, e.g. {"top_k": 3}.')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ApiError(422, f"Unknown parameters {unknown}; this API takes {', '.join(PARAMETERS)}.")
    if parameters.get("function_to_apply") not in (None, "softmax"):
        raise ApiError(422, 'function_to_apply: only "softmax" (the default) is available.')
    top_k = parameters.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ApiError(422, f"top_k {top_k!r}: give a whole number of at least 1.")
    return top_k


def ranked(probs: dict[str, float], top_k: int | None) -> list[dict]:
    best = sorted(probs.items(), key=lambda kv: -kv[1])[:top_k]
    return [{"label": label, "score": round(float(score), 6)} for label, score in best]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ------------------------------------------------------------------------------------------- routes

def routes(models: dict[str, ModelSet], *, max_bytes: int, running: int, waiting: int) -> list:
    """The API's routes, one per task served (`POST /models/<task>/{name}`), for FastAPI's `routes=`; they
    share one Gate."""
    router, gate, label = APIRouter(), Gate(running, waiting), label_model()
    for task, model_set in models.items():
        tag = get_task(task).pipeline_tag
        router.add_api_route(f"/models/{task}/{{name}}", endpoint(model_set, tag, gate, max_bytes),
                             methods=["POST"], name=f"classify_{task}", summary=f"{tag}: {task} models by name",
                             description=DESCRIPTION, response_model=list[list[label]] if tag in NESTED else list[label],
                             responses=ERRORS, openapi_extra=request_body(tag), tags=["Inference API"])
    return router.routes


def predict(predictor, raw) -> dict[str, float]:
    """`predictor.predict(raw)` in a worker thread, its freed memory handed back after (as every event of the
    app's own: demo/memory.py)."""
    try:
        return predictor.predict(raw)
    finally:
        memory.release()


def endpoint(models: ModelSet, tag: str, gate: Gate, max_bytes: int):
    binary = tag in BINARY

    async def classify(request: Request, name: str):
        try:
            predictor = models.get(name)
            content_type = request.headers.get("content-type", "")
            # JSON carries a file as base64: a third larger than the file itself.
            as_json = binary and content_type.split(";")[0].strip().lower() == "application/json"
            limit = max_bytes * 4 // 3 + 4096 if as_json else max_bytes
            raw, top_k = parse(await read_body(request, limit), content_type, binary)
            if binary and len(raw) > max_bytes:
                raise ApiError(413, f"The file is over {max_bytes / 2**20:.0f} MB, the largest upload this app takes.")
            async with gate:
                probs = await run_in_threadpool(predict, predictor, raw)
        except ApiError as e:
            return error(e.status, str(e))
        except ClientDisconnect:
            return error(400, "The request ended before its body did.")
        except ModelUnavailable as e:
            return error(404, str(e))
        except InputError as e:
            return error(400, str(e))
        except Exception:   # a fault of ours: its detail goes to the log, never to the caller
            log.exception("inference API: %s/%s failed", models.task, name)
            return error(500, "The model failed on this input; the server's log has the details.")
        answer = ranked(probs, top_k)
        # A response, not the list: FastAPI would validate it against the response model again (the
        # model stays, for the schema).
        return JSONResponse([answer] if tag in NESTED else answer)

    return classify


DESCRIPTION = ("The shape of Hugging Face Inference Endpoints: raw file bytes with their content type, or JSON "
               '{"inputs": ..., "parameters": {"top_k": k}} (text; or a file in base64). Answers [{"label", '
               '"score"}] best first; errors are {"error": "..."}.')


def request_body(tag: str) -> dict:
    """What OpenAPI says the body is (the endpoint reads it itself, to count its bytes as they come)."""
    payload = {"type": "object", "required": ["inputs"],
               "properties": {"inputs": {"type": "string", "description": "the file in base64" if tag in BINARY
                                         else "the text"},
                              "parameters": {"type": "object", "properties": {"top_k": {"type": "integer"}}}}}
    content = {"application/json": {"schema": payload}}
    if tag in BINARY:
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    else:
        content["text/plain"] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


def error_schema(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}}}}}


ERRORS = {400: error_schema("an input that cannot be read"), 404: error_schema("no such model"),
          413: error_schema("over the upload limit"), 422: error_schema("parameters it does not take"),
          429: error_schema("too many requests waiting"), 500: error_schema("a fault of the server's")}


def label_model():
    from pydantic import BaseModel

    class Label(BaseModel):
        label: str
        score: float

    return Label
