"""What stands between a Serve app and the network: the API key and the request limits.

Closed by default: the committed Serve YAML binds the HTTP proxy to 127.0.0.1, and the search talks to the
apps over handles, not HTTP. A user who exposes HTTP (``http_options.host`` other than loopback) gets
``require_api_key: true`` on every app (:func:`sphere_ray.serving.launch.deploy`), and a replica then
refuses to start without a key. The key is read by the replica from an environment variable
(``api_key_env``, default ``SPHERE_RAY_API_KEY``, set on the nodes) or a secret file (``api_key_file``),
never from the YAML; every HTTP route then needs ``Authorization: Bearer <key>`` (what OpenAI clients
send) or ``X-API-Key: <key>``, else 401.

Limits (:class:`RequestLimits`, the app's ``limits`` arg) bound what one request may ask: a body over
``max_body_bytes`` is answered 413 before it is parsed; prompts, samples, tokens and PRM items over their
limits are answered 400 with the limit named, over HTTP and over handles alike, and never reach the engine.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BodyLimit",
    "LimitExceededError",
    "RequestLimits",
    "check_generate",
    "check_score",
    "configure",
    "error_body",
    "error_response",
    "require_key",
    "resolve_key",
]


class RequestLimits(BaseModel):
    """Bounds on one request (the ``limits`` arg of a generation or PRM app)."""

    model_config = ConfigDict(extra="forbid")
    max_body_bytes: int = Field(16 * 2**20, ge=1024, description="HTTP body size (413 above)")
    max_prompt_chars: int = Field(200_000, ge=1, description="characters of one prompt, message list or PRM item")
    max_prompts: int = Field(4096, ge=1, description="prompts in one generate request")
    max_n: int = Field(64, ge=1, description="samples per prompt")
    max_tokens: int = Field(32768, ge=1, description="max_tokens of one request")
    max_sequences: int = Field(8192, ge=1, description="prompts x n of one request")
    max_score_items: int = Field(4096, ge=1, description="items in one PRM request")


class LimitExceededError(ValueError):
    """A request over a limit; ``status`` is the HTTP answer (400, or 413 for the body)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_STATE: dict[str, Any] = {"key": None, "limits": RequestLimits()}
"""This replica's key and limits (one replica per process; set by :func:`configure` in its constructor)."""


def resolve_key(env: str, file: str | None, required: bool) -> str | None:
    """The API key from ``file`` (if set) or the environment variable ``env``.

    Raises:
        ValueError: ``required`` and no key found, or an unreadable or empty key file.
    """
    key = None
    if file:
        try:
            key = Path(file).read_text().strip()
        except OSError as e:
            raise ValueError(f"api_key_file {file!r} cannot be read: {e}") from e
        if not key:
            raise ValueError(f"api_key_file {file!r} is empty")
    key = key or os.environ.get(env, "").strip() or None
    if required and key is None:
        raise ValueError(
            f"HTTP is exposed beyond this host (require_api_key) but there is no API key: set {env} on every node, "
            "or api_key_file to a secret file every node can read"
        )
    return key


def configure(key: str | None, limits: RequestLimits) -> None:
    """Set this replica's key and limits."""
    _STATE.update(key=key, limits=limits)


def limits() -> RequestLimits:
    """The limits of this replica."""
    return _STATE["limits"]


async def require_key(request: Request) -> None:
    """FastAPI dependency: with a key configured, the request must carry it (401 otherwise)."""
    key = _STATE["key"]
    if key is None:
        return
    auth = request.headers.get("authorization", "")
    given = request.headers.get("x-api-key") or (auth[7:].strip() if auth[:7].lower() == "bearer " else "")
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


def _over(value: int, limit: int, what: str) -> None:
    if value > limit:
        raise LimitExceededError(f"{what} is {value}, over this app's limit of {limit}")


def check_generate(prompts: list[str], n: int, max_tokens: int) -> None:
    """Raise :class:`LimitExceededError` if a generate request asks more than this replica allows."""
    lim = limits()
    _over(len(prompts), lim.max_prompts, "the number of prompts")
    _over(n, lim.max_n, "n")
    _over(max_tokens, lim.max_tokens, "max_tokens")
    _over(len(prompts) * n, lim.max_sequences, "prompts x n")
    _over(max((len(p) for p in prompts), default=0), lim.max_prompt_chars, "the longest prompt (characters)")


def check_score(items: list[Any]) -> None:
    """Raise :class:`LimitExceededError` if a PRM request asks more than this replica allows."""
    lim = limits()
    _over(len(items), lim.max_score_items, "the number of items")
    size = max((len(i.question) + sum(len(s) for s in i.steps) for i in items), default=0)
    _over(size, lim.max_prompt_chars, "the longest item (characters)")


class BodyLimit:
    """ASGI middleware: a body over the limit gets 413 (by its Content-Length, or while it streams in)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on, or answer 413."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cap = limits().max_body_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            return await _reject(send, cap)
        seen, too_large = 0, False

        async def counted() -> dict:
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > cap:
                too_large = True
                raise _TooLargeError
            return message

        async def unless_too_large(message: dict) -> None:
            if not too_large:  # the app's own answer to the broken read is replaced by the 413
                await send(message)

        try:
            await self.app(scope, counted, unless_too_large)
        except _TooLargeError:
            pass
        if too_large:
            await _reject(send, cap)


class _TooLargeError(Exception):
    """The body grew over the limit while it streamed in."""


def error_body(status: int, detail: Any, message: str | None = None) -> dict[str, Any]:
    """An error answer: FastAPI's ``detail`` and OpenAI's ``error`` object (what OpenAI clients read)."""
    kind = {401: "authentication_error", 413: "invalid_request_error", 422: "invalid_request_error"}.get(status)
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return {"detail": detail, "error": {"message": message or str(detail), "type": kind, "param": None, "code": status}}


def error_response(status: int, detail: Any, message: str | None = None, headers: Any = None) -> Any:
    """:func:`error_body` as a FastAPI ``JSONResponse``."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content=error_body(status, detail, message), headers=headers)


async def _reject(send: Any, cap: int) -> None:
    import json

    body = json.dumps(error_body(413, f"request body over this app's limit of {cap} bytes")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
