"""The FastAPI routes of `pz2 serve`. Routes are thin: each takes the service from `app.state`,
makes one call and returns; errors of every kind leave through one handler in OpenAI's shape
`{"error": {message, type, param, code}}`, never as a traceback.

The assistant loads in the background after the server starts: `/health` answers 503 until it
is ready, so an orchestrator (or a test) waits on it instead of guessing.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pz2.config import ServingConfig
from pz2.errors import Pz2Error
from pz2.models.artifacts import first_line
from pz2.runtime.assistant import Assistant
from pz2.serving.errors import (
    AuthError,
    BodyTooLargeError,
    NotReadyError,
    OverloadedError,
    INTERNAL,
    RequestError,
    as_request_error,
    http_status,
)
from pz2.serving.metrics import Metrics
from pz2.serving.protocol import (
    MODELS,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorInfo,
    ErrorResponse,
    Feedback,
    FeedbackRequest,
    ModelList,
)
from pz2.serving.service import ChatService

logger = logging.getLogger(__name__)

CHAT_ROUTE, FEEDBACK_ROUTE = "/v1/chat/completions", "/v1/feedback"
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 500, 503)}


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A warning when the server is reachable beyond this machine with no key: anyone there could use it."""
    if api_key or _is_loopback(host):
        return None
    return (f"serving on {host} without an API key: anyone who reaches this address can use the models; "
            "set --api-key or PZ2_API_KEY")


def error_response(exc: Exception, status: int | None = None) -> JSONResponse:
    exc = as_request_error(exc)
    code_status, kind = http_status(exc)
    status = status or code_status
    info = ErrorInfo(message=str(exc).splitlines()[0] if str(exc) else kind, type=kind,
                     param=getattr(exc, "param", None), code=getattr(exc, "code", None))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, OverloadedError) else None
    return JSONResponse(ErrorResponse(error=info).model_dump(), status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: a body over the limit gets 413 before anything parses it; the body is read
    once here (it is small by definition) and handed on unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                error = BodyTooLargeError(f"the request body is over {self.max_bytes // 1024} KB "
                                          "(runtime.serving.max_body_kb)", code="body_too_large")
                return await error_response(error)(scope, receive, send)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def allowed_hosts(serving: ServingConfig) -> frozenset[str] | None:
    """The `Host` names the server answers to (None: any), by the policy of `runtime.serving.allowed_hosts`."""
    extra = {h.lower() for h in serving.allowed_hosts}
    if _is_loopback(serving.host):
        return LOOPBACK_NAMES | extra
    return frozenset(extra | {serving.host.lower()}) if extra else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _host_name(header: str) -> str:
    """The name in a `Host` header, without its port: `[::1]:8000` -> `::1`, `Example.com:80` -> `example.com`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware around every route. It refuses a `Host` the server does not answer to (DNS
    rebinding), turns an unexpected exception into a 500 with a JSON body (the connection stays open for
    the next request), and counts chat requests by model (the served names, or `other`: a client cannot
    mint series) and status. Pure ASGI: Starlette's BaseHTTPMiddleware would hide a client's disconnect
    from the route, and a non-streaming request would generate on for nobody."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, metrics: Metrics) -> None:
        self.app, self.hosts, self.metrics = app, hosts, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if self.hosts is not None and host not in self.hosts:
            error = RequestError(f"this server does not answer to the host name {host!r} "
                                 "(runtime.serving.allowed_hosts)", code="host_not_allowed")
            return await error_response(error)(scope, receive, send)
        status, started = 500, False

        async def sending(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            logger.error("%s %s failed", scope["method"], scope["path"], exc_info=e)
            if started:   # the status line has gone out: nothing to answer with
                raise
            await error_response(RuntimeError(INTERNAL))(scope, receive, sending)
        finally:
            if scope["path"] == CHAT_ROUTE:
                model = scope.get("state", {}).get("model")
                self.metrics.requests.labels(model if model in MODELS else "other", str(status)).inc()


def _param(loc: tuple[Any, ...]) -> str | None:
    """The parameter a validation error is about, dotted as OpenAI names it (`messages.0.role`)."""
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Start the server at once and load the assistant in the background; close it on shutdown."""
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pz2-engine")

    async def start() -> None:
        try:
            assistant = await asyncio.get_running_loop().run_in_executor(loader, app.state.load)
        except Exception as e:  # a broken model must show in /health, not kill the server silently
            logger.error("the assistant could not load: %s", e)
            app.state.load_error = first_line(e)
            return
        app.state.service = ChatService(assistant, app.state.serving, app.state.metrics, app.state.base_name, loader)
        logger.info("pz2 serve ready")

    app.state.service, app.state.load_error = None, None
    loading = asyncio.create_task(start())
    yield
    loading.cancel()
    if app.state.service is not None:
        app.state.service.close()
        app.state.service.assistant.close()
    loader.shutdown(wait=False, cancel_futures=True)


def service(request: Request) -> ChatService:
    svc = request.app.state.service
    if svc is None:
        problem = request.app.state.load_error
        raise NotReadyError(f"the assistant failed to load: {problem}" if problem else
                            "the assistant is still loading; retry when /health says ok", code="loading")
    return svc


def authorized(request: Request) -> None:
    api_key = request.app.state.api_key
    if api_key is None:
        return
    sent = request.headers.get("authorization", "")
    scheme, _, token = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise AuthError("a valid API key is required: send `Authorization: Bearer <key>`", code="invalid_api_key")


async def _pz2_error(request: Request, exc: Pz2Error) -> JSONResponse:
    if http_status(exc)[0] >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(exc)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return error_response(RequestError(
            f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", code="invalid_json"))
    param = _param(tuple(first.get("loc", ())))
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return error_response(RequestError(f"`{param}`: {message}" if param else message, param, "invalid_value"))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(RequestError(str(exc.detail), code=exc.status_code), exc.status_code)


routes = APIRouter()


@routes.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(resources.files("pz2.serving").joinpath("static/index.html").read_text("utf-8"))


@routes.get("/health")
async def health(request: Request) -> JSONResponse:
    if request.app.state.service is not None:
        return JSONResponse({"status": "ok"})
    problem = request.app.state.load_error
    return JSONResponse({"status": "failed", "error": problem} if problem else {"status": "loading"},
                        status_code=503)


@routes.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@routes.get("/v1/models", response_model=ModelList, responses=ERRORS, dependencies=[Depends(authorized)])
async def models(svc: ChatService = Depends(service)) -> ModelList:
    return svc.models()


@routes.post(CHAT_ROUTE, responses={200: {"model": ChatCompletionResponse, "description": "The answer, or with "
                                        "`stream` server-sent ChatCompletionChunk events"}, **ERRORS},
             dependencies=[Depends(authorized)])
async def chat_completions(body: ChatCompletionRequest, request: Request, svc: ChatService = Depends(service)) -> Any:
    request.state.model = body.model
    job = await svc.submit(body, request.is_disconnected)
    if job is None:   # the client left while waiting: nobody to answer (499: closed by the client, as nginx logs it)
        return Response(status_code=499)
    if body.stream:
        return StreamingResponse(svc.stream(job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await svc.complete(job, request.is_disconnected)


@routes.post(FEEDBACK_ROUTE, response_model=Feedback, responses=ERRORS, dependencies=[Depends(authorized)])
async def feedback(body: FeedbackRequest, svc: ChatService = Depends(service)) -> Feedback:
    """pz2's extension: rate an answer by its response id (good or bad, with an optional comment)."""
    return await asyncio.get_running_loop().run_in_executor(None, svc.feedback, body)   # an fsync'd write


def create_app(load: Callable[[], Assistant], serving: ServingConfig, base_name: str,
               api_key: str | None = None) -> FastAPI:
    """The API over the assistant `load` builds (in the background, after the server is up)."""
    app = FastAPI(title="pz2", summary="The hybrid assistant over an OpenAI-compatible API", lifespan=lifespan)
    app.state.load, app.state.serving, app.state.base_name, app.state.api_key = load, serving, base_name, api_key
    app.state.metrics = Metrics()
    app.add_middleware(BodyLimit, max_bytes=serving.max_body_kb * 1024)
    app.add_middleware(Guard, hosts=allowed_hosts(serving), metrics=app.state.metrics)
    for error, handler in ((Pz2Error, _pz2_error), (RequestValidationError, _invalid),
                           (StarletteHTTPException, _http)):
        app.add_exception_handler(error, handler)
    app.include_router(routes)
    return app
