"""Content types come from the bytes, never from the client's claim.

`check` looks at the first bytes (magic numbers via the `filetype` library; text/plain is
UTF-8 without NUL bytes) as soon as they arrive; `TextValidator` and `image_size` finish
the job once the whole file is there.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterable

import filetype  # type: ignore[import-untyped]
from PIL import Image, UnidentifiedImageError

HEAD_BYTES = 8192  # what filetype reads; also enough to tell text from markup
# Dimensions are read from at most this much of the start of an image (headers only).
IMAGE_PREFIX_BYTES = 4 * 1024 * 1024

GENERIC_CLAIMS = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
}
_DESCRIPTIONS = {
    "application/x-msdownload": "a Windows executable",
    "application/x-executable": "an ELF executable",
    "application/x-mach-binary": "a Mach-O executable",
    "text/html": "an HTML document",
    "image/svg+xml": "an SVG document (can carry scripts)",
    "application/xml": "an XML document",
    "application/octet-stream": "binary data of no recognised type",
}
_MARKUP = (
    ("<?xml", "application/xml"),
    ("<svg", "image/svg+xml"),
    ("<!doctype html", "text/html"),
    ("<html", "text/html"),
    ("<head", "text/html"),
    ("<body", "text/html"),
    ("<script", "text/html"),
    ("<iframe", "text/html"),
    ("<!--", "text/html"),
)


# Formats whose files may be plain text from the first byte on: the signature decides.
_TEXT_FORMATS = frozenset({"application/pdf", "application/postscript", "application/rtf"})
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0c\x1b")


class Refused(Exception):
    """The bytes are not acceptable; the message says why (shown to the client)."""


def normalize(content_type: str) -> str:
    """`Image/JPG; charset=x` -> `image/jpeg`."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def describe(content_type: str) -> str:
    what = _DESCRIPTIONS.get(content_type)
    return f"{content_type} ({what})" if what else content_type


def compatible(claimed: str, detected: str) -> bool:
    """A claim is honest when it names what the bytes are (any text/* for plain text)."""
    claimed = normalize(claimed)
    if claimed in GENERIC_CLAIMS or claimed == detected:
        return True
    return detected == "text/plain" and claimed.startswith("text/") and claimed not in {
        "text/html",
        "text/xml",
    }


def claim_allowed(claimed: str, allowed: Iterable[str]) -> bool:
    claimed = normalize(claimed)
    return claimed in GENERIC_CLAIMS or any(compatible(claimed, a) for a in allowed)


def _utf8_prefix_ok(head: bytes, complete: bool) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The head may end in the middle of a multi-byte character.
        return not complete and exc.reason == "unexpected end of data" and exc.end == len(head)
    return True


def _clean_text(head: bytes, complete: bool) -> bool:
    """UTF-8 with no control characters but whitespace: what no binary header looks like."""
    if not _utf8_prefix_ok(head, complete):
        return False
    return not any(b < 0x20 and b not in _TEXT_CONTROLS for b in head) and 0x7F not in head


def detect(head: bytes, complete: bool) -> str:
    """The content type of a file from its first bytes (`complete`: head is the whole file)."""
    kind = filetype.guess(head)
    if kind is not None:
        mime = normalize(str(kind.mime))
        # Some signatures are two or three letters ("BM" bitmap, "MZ" executable, "ID3"
        # audio): a clean text that happens to start with them is text, not that format.
        if mime in _TEXT_FORMATS or not _clean_text(head, complete):
            return mime
    if b"\x00" not in head and _utf8_prefix_ok(head, complete):
        start = head[:1024].decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
        for prefix, markup in _MARKUP:
            if start.startswith(prefix):
                return "image/svg+xml" if markup == "application/xml" and "<svg" in start \
                    else markup
        return "text/plain"
    return "application/octet-stream"


def check(head: bytes, *, claimed: str, allowed: Iterable[str], complete: bool) -> str:
    """The detected type, or Refused when it is not allowed or the claim disguises it."""
    detected = detect(head, complete)
    claimed = normalize(claimed)
    allowed = tuple(allowed)
    declared = "" if claimed in GENERIC_CLAIMS else f" (declared as {claimed})"
    if detected not in allowed:
        raise Refused(
            f"file content is {describe(detected)}{declared}, which is not an allowed type; "
            f"allowed: {', '.join(allowed)}"
        )
    if not compatible(claimed, detected):
        raise Refused(f"file content is {describe(detected)}, not {claimed} as declared")
    return detected


class TextValidator:
    """text/plain must be valid UTF-8 without NUL bytes, all of it."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._seen = 0

    def feed(self, data: bytes) -> None:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise Refused(f"file content is not text/plain: NUL byte at offset {self._seen + nul}")
        try:
            self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            at = self._seen + exc.start
            raise Refused(f"file content is not text/plain: invalid UTF-8 at offset {at}") from None
        self._seen += len(data)

    def finish(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Refused("file content is not text/plain: truncated UTF-8 at the end") from None


def image_size(prefix: bytes, content_type: str, whole: bool) -> tuple[int, int]:
    """(width, height) from an image's headers; Refused when the bytes are no such image.

    Blocking (Pillow): call through asyncio.to_thread. `whole`: prefix is the entire file.
    Types Pillow does not know get (0, 0).
    """
    Image.init()
    formats = [fmt for fmt, mime in Image.MIME.items() if mime == content_type]
    if not formats:
        return (0, 0)
    try:
        with Image.open(io.BytesIO(prefix), formats=formats) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise Refused("image has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if not whole:
            return (0, 0)  # headers beyond the prefix we read: keep the type, skip the size
        raise Refused(f"file content is not a valid {content_type} image ({exc})") from None
    if width <= 0 or height <= 0:
        raise Refused(f"file content is not a valid {content_type} image (no dimensions)")
    return (width, height)
