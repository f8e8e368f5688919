"""The FastAPI application: the page at ``/``, ``POST /api/predict``, ``GET /api/health``, ``/docs``.

Photos are checked by their header before anything is decoded (bytes, then pixels), then answered
in batches by one worker thread (``batching.py``); every error is a readable sentence with the
technical reason beside it (``errors.py``). With a token, the API wants ``Authorization: Bearer``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..apps.predict import Prediction
from ..images.decode import (
    PHONE_MAX_PIXELS,
    ImageDecodeError,
    ImageTooLargeError,
    NotAnImageError,
    check_image_header,
)
from . import errors
from .batching import Batcher
from .errors import ErrorBody, ServiceError

logger = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "index.html"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = PHONE_MAX_PIXELS
# Room for the multipart envelope (boundaries, headers) around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "empty upload"), (401, "missing or wrong token (when the service has one)"),
        (413, "more bytes than --max-mb, or more pixels than --max-pixels"),
        (415, "not an image, or a damaged one"), (422, "no photo in the form field 'file'"),
    )
}


def _answer_json(name: str, answer: Any) -> dict:
    """The JSON of one photo's answer (a ``PipelineFunction`` ``Answer``): its breeds, or
    ``recognised`` false and a ``hint``; the training photos most like it, with thumbnails."""
    return Prediction.from_answer(name, answer).as_dict(thumbnails=True)


def _check_header(content: bytes, name: str, max_pixels: int) -> int:
    """The photo's pixel count by its header; a ``ServiceError`` when it is too large or no image."""
    try:
        _, width, height = check_image_header(content, max_pixels)
    except ImageTooLargeError as error:
        raise errors.too_many_pixels(name, error.width, error.height, max_pixels, str(error)) from None
    except NotAnImageError as error:
        raise errors.not_an_image(name, str(error)) from None
    except ImageDecodeError as error:  # an image format, but its header is cut off or broken
        raise errors.damaged_image(name, str(error)) from None
    return width * height


def create_app(pipeline: Any, model_dir: str, max_bytes: int = DEFAULT_MAX_BYTES, top: int = 3,
               max_pixels: int = DEFAULT_MAX_PIXELS, token: str | None = None) -> FastAPIOffline:
    """The web service around a loaded pipeline (loaded once; requests share it).

    Parameters
    ----------
    pipeline : LocalPipeline
        Anything with ``labels``, ``mode``, ``answers(photos, top)`` and optionally ``workers``
        (batches it runs at once; 1 by default).
    model_dir : str
        The model folder; only its name is shown (``/api/health``).
    max_bytes : int
        Uploads larger than this are refused (413).
    top : int
        Classes in each answer.
    max_pixels : int
        Photos whose header declares more pixels are refused (413) before they are decoded.
    token : str, optional
        When given, ``/api/predict`` wants ``Authorization: Bearer <token>`` (401 otherwise).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> class Stub:
    ...     labels, mode = ["cat", "dog"], "in-process"
    ...     def answers(self, photos, top):
    ...         return []
    >>> client = TestClient(create_app(Stub(), "models/pets"))
    >>> client.get("/api/health").json()["labels"]
    ['cat', 'dog']
    >>> answer = client.post("/api/predict", files={"file": ("x.jpg", b"", "image/jpeg")}).json()
    >>> answer["detail"]
    'The photo arrived empty: take or choose it again and send it.'
    >>> answer["reason"], answer["code"]
    ("upload 'x.jpg' is empty (0 bytes)", 'empty')
    """
    batcher = Batcher(pipeline.answers, top=top, workers=getattr(pipeline, "workers", 1))

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        batcher.close()

    app = FastAPIOffline(title="deepframes breed service", version=__version__, redoc_url=None, lifespan=lifespan,
                         description="Send a photo, get the most probable breeds back.")
    bearer = HTTPBearer(auto_error=False, description="the service's token (--token or DEEPFRAMES_TOKEN)")

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
        logger.info("%s %s -> %d %s: %s", request.method, request.url.path, error.status, error.code, error.reason)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg')}"
                             for problem in error.errors())
        missing_file = any(tuple(problem.get("loc", ()))[-1:] == ("file",) for problem in error.errors())
        return await _service_error(request, (errors.no_photo if missing_file else errors.bad_request)(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return await _service_error(request, errors.no_such_address(error.status_code, f"{error.status_code} "
                                                                    f"{error.detail} ({request.method} {request.url.path})"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected failure answering %s %s", request.method, request.url.path)
        return await _service_error(request, errors.internal(f"{type(error).__name__}: {error}"))

    @app.middleware("http")
    async def _refuse_large_bodies(request: Request, call_next):
        # Refuse before the body is received, when its declared length is already too large.
        declared = request.headers.get("content-length", "")
        if request.url.path == "/api/predict" and declared.isdigit() and \
                int(declared) > max_bytes + _MULTIPART_OVERHEAD:
            return JSONResponse(errors.too_many_bytes("file", max_bytes).body(), status_code=413)
        return await call_next(request)

    # A default, not Annotated: annotations are strings here, and `bearer` is not a module global.
    def _authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None:
            raise errors.token_needed("no 'Authorization: Bearer <token>' header; the service was started with a token")
        if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise errors.token_needed("the bearer token does not match the service's token")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/health")
    async def health() -> dict:
        """Whether the service is up: the model's classes and the upload limits (no token needed)."""
        return {"status": "ok", "version": __version__, "model": Path(model_dir).name,
                "labels": list(pipeline.labels), "mode": pipeline.mode,
                "similar_photos": len(getattr(pipeline, "similar", None) or ()), "max_bytes": max_bytes,
                "max_pixels": max_pixels, "token_required": token is not None}

    @app.post("/api/predict", responses=_ERRORS, dependencies=[Depends(_authorized)])
    async def predict(file: Annotated[UploadFile, File(description="a photo (JPEG, PNG, GIF, WebP, ...)")]) -> dict:
        """The most probable classes of the uploaded photo, with probabilities.

        Errors answer with ``detail`` (a sentence for the person using the page), ``reason``
        (technical) and ``code``.
        """
        name = file.filename or "upload"
        content = await file.read(max_bytes + 1)
        if not content:
            raise errors.empty_upload(name)
        if len(content) > max_bytes:
            raise errors.too_many_bytes(name, max_bytes)
        pixels = _check_header(content, name, max_pixels)
        started = time.perf_counter()
        answer = await batcher.submit(content, pixels)
        if answer.error is not None:
            raise errors.damaged_image(name, answer.error)
        result = _answer_json(name, answer)
        result["seconds"] = round(time.perf_counter() - started, 4)
        return result

    return app
