"""What the web service answers when it cannot answer with breeds: one plain sentence for the
person holding the phone (``detail``: what happened and what to do next), the technical reason
for the logs (``reason``), and a stable ``code`` for programs.

Every error the API gives has this shape, 422s included, so the page shows ``detail`` as it is.
"""

from __future__ import annotations

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """The JSON body of every error answer."""

    detail: str
    reason: str
    code: str


class ServiceError(Exception):
    """An answer other than 200: HTTP ``status``, a stable ``code``, the sentence for the person
    using the page (``detail``) and the technical ``reason``."""

    def __init__(self, status: int, code: str, detail: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.detail, self.reason = status, code, detail, reason
        self.headers = headers

    def body(self) -> dict[str, str]:
        return {"detail": self.detail, "reason": self.reason, "code": self.code}


def empty_upload(name: str) -> ServiceError:
    return ServiceError(400, "empty", "The photo arrived empty: take or choose it again and send it.",
                        f"upload {name!r} is empty (0 bytes)")


def too_many_bytes(name: str, max_bytes: int) -> ServiceError:
    megabytes = f"{max_bytes / (1024 * 1024):g}"
    return ServiceError(413, "too_large",
                        f"The photo is too large to send (over {megabytes} MB): send a smaller copy, or take a new photo.",
                        f"upload {name!r} is larger than the limit of {max_bytes} bytes ({megabytes} MB, --max-mb)")


def too_many_pixels(name: str, width: int | None, height: int | None, max_pixels: int, reason: str) -> ServiceError:
    size = f" ({width * height / 1e6:.0f} megapixels)" if width and height else ""
    return ServiceError(413, "too_many_pixels",
                        f"The photo has too many pixels to check{size}: send a smaller copy, or take a new photo "
                        "with the camera's normal setting.",
                        f"upload {name!r}: {reason} (--max-pixels {max_pixels})")


def not_an_image(name: str, reason: str) -> ServiceError:
    return ServiceError(415, "not_an_image", "This file is not a photo: choose a photo (JPEG or PNG) and send it.",
                        f"upload {name!r}: {reason}")


def damaged_image(name: str, reason: str) -> ServiceError:
    return ServiceError(415, "damaged",
                        "The photo is damaged or was only partly sent: send it again, or take a new one.",
                        f"upload {name!r}: {reason}")


def no_photo(reason: str) -> ServiceError:
    return ServiceError(422, "no_photo", "No photo was attached: choose or take a photo and send it.", reason)


def bad_request(reason: str) -> ServiceError:
    return ServiceError(422, "bad_request",
                        "The request was not understood: send one photo in the form field 'file'.", reason)


def token_needed(reason: str) -> ServiceError:
    return ServiceError(401, "token", "This service needs its access code: enter the code you were given and "
                                      "send the photo again.", reason, headers={"WWW-Authenticate": "Bearer"})


def no_such_address(status: int, reason: str) -> ServiceError:
    return ServiceError(status, "not_found" if status == 404 else "http_" + str(status),
                        "There is nothing to do at this address: open the service's main page instead.", reason)


def internal(reason: str) -> ServiceError:
    return ServiceError(500, "internal", "The service ran into a problem with this photo: try again in a moment, and "
                                         "tell the person who runs the service if it keeps happening.", reason)
