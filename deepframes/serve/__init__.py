"""The web service: a page and a JSON API answering with the top breeds of an uploaded photo."""

from __future__ import annotations

from .local import LocalPipeline as LocalPipeline

__all__ = ["LocalPipeline", "create_app"]


def create_app(*args, **kwargs):
    """Build the FastAPI application (see ``deepframes.serve.app.create_app``); needs the ``serve`` extra."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
