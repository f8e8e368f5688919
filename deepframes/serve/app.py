"""The FastAPI application: the page at ``/``, ``POST /api/predict``, ``GET /api/health``, ``/docs``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from .. import __version__
from ..images import ImageDecodeError
from .local import LocalPipeline

PAGE = Path(__file__).with_name("static") / "index.html"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Room for the multipart envelope (boundaries, headers) around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _too_large(name: str, max_bytes: int) -> str:
    return f"The upload {name} is larger than the limit of {max_bytes // (1024 * 1024)} MB; send a smaller photo."


def create_app(pipeline: LocalPipeline, model_dir: str, max_bytes: int = DEFAULT_MAX_BYTES, top: int = 3) -> FastAPI:
    """The web service around a loaded pipeline (loaded once; requests share it).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> class Stub:
    ...     labels, mode = ["cat", "dog"], "in-process"
    >>> client = TestClient(create_app(Stub(), "model"))
    >>> client.get("/api/health").json()["labels"]
    ['cat', 'dog']
    >>> client.post("/api/predict", files={"file": ("x.jpg", b"", "image/jpeg")}).json()["detail"]
    'The upload x.jpg is empty (0 bytes); expected an image file such as a JPEG or PNG photo.'
    """
    app = FastAPI(title="deepframes breed service", version=__version__,
                  description="Send a photo, get the most probable breeds back.")

    @app.exception_handler(HTTPException)
    async def _as_json(_, error: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.middleware("http")
    async def _refuse_large_bodies(request: Request, call_next):
        # Refuse before the body is received, when its declared length is already too large.
        declared = request.headers.get("content-length", "")
        if request.url.path == "/api/predict" and declared.isdigit() and \
                int(declared) > max_bytes + _MULTIPART_OVERHEAD:
            return JSONResponse({"detail": _too_large("file", max_bytes)}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/health")
    async def health() -> dict:
        """Whether the service is up, with the model's classes."""
        return {"status": "ok", "model": model_dir, "labels": list(pipeline.labels), "mode": pipeline.mode,
                "max_bytes": max_bytes}

    @app.post("/api/predict")
    async def predict(file: Annotated[UploadFile, File(description="an image file (JPEG, PNG, GIF, WebP, ...)")]) -> dict:
        """The ``top`` most probable classes of the uploaded image, with probabilities."""
        name = file.filename or "upload"
        content = await file.read(max_bytes + 1)
        if not content:
            raise _error(400, f"The upload {name} is empty (0 bytes); expected an image file such as a JPEG or PNG photo.")
        if len(content) > max_bytes:
            raise _error(413, _too_large(name, max_bytes))
        started = time.perf_counter()
        try:
            prediction = await run_in_threadpool(pipeline.predict, content, name, top)
        except ImageDecodeError as error:
            raise _error(415, f"The upload {name} is not a readable image ({error}); expected a JPEG, PNG, GIF, "
                              "BMP, TIFF or WebP file.") from None
        result = prediction.as_dict()
        result["seconds"] = round(time.perf_counter() - started, 4)
        return result

    return app
