"""Reading one file out of a `multipart/form-data` body as it arrives, never holding all of it.

`MultipartFileReader` feeds the request's body stream to python-multipart's streaming parser
and hands out the named file part's bytes chunk by chunk, counting them: crossing the limit
raises `UploadTooLarge` at once, however much of the body is still to come.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
MULTIPART_OVERHEAD_BYTES: Final = 16 * 1024
"""Room for boundaries, part headers and small fields beyond the file itself."""
DRAIN_BYTES: Final = 1024 * 1024
"""How much of a refused body is still read (and dropped) so the client sees the 413 rather
than a reset connection while it is still sending; beyond that the connection is closed."""
CHUNK_BYTES: Final = 64 * 1024

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


class UploadError(Exception):
    """The body cannot be read as an upload; `status` says how to answer."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedMediaType(UploadError):
    """Not a multipart/form-data body."""

    status = 415


class UploadTooLarge(UploadError):
    """The file (or the body around it) is larger than allowed."""

    status = 413


class MissingFilePart(UploadError):
    """The body ended without the file part."""

    status = 422


def media_type(value: str | None) -> str:
    """A safe `type/subtype` from a Content-Type value; octet-stream for anything else."""
    candidate = (value or "").partition(";")[0].strip().lower()
    return candidate if _MEDIA_TYPE.fullmatch(candidate) else DEFAULT_CONTENT_TYPE


def upload_filename(raw: str) -> str:
    """The last path segment of a client's file name, without control characters."""
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join(char for char in name if char.isprintable())[:255].strip()
    return name or "upload"


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type; UploadError when there is none."""
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError("The multipart/form-data Content-Type has no boundary.")
    return boundary


def _filename_option(options: dict[bytes, bytes]) -> str:
    # RFC 7578 forbids filename* in form data, but some clients send it (RFC 5987 form).
    extended = options.get(b"filename*")
    if extended is not None:
        charset, _, encoded = extended.decode("latin-1").partition("''")
        if charset.lower() == "utf-8" and encoded:
            return unquote(encoded, errors="replace")
    return options.get(b"filename", b"").decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class FilePart:
    """What the client said about the file."""

    filename: str
    content_type: str


class MultipartFileReader:
    """Finds the part named `field` in a multipart body stream and yields its bytes."""

    def __init__(
        self,
        stream: AsyncIterator[bytes],
        boundary: bytes,
        *,
        field: str,
        max_file_bytes: int,
    ) -> None:
        self._stream = stream
        self._field = field.encode()
        self._max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + MULTIPART_OVERHEAD_BYTES
        self._body_bytes = 0
        self._file_bytes = 0
        self._stream_ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._file_seen = False
        self._file_ended = False
        self._file: FilePart | None = None
        self._pending: list[bytes] = []
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    async def open(self) -> FilePart:
        """Read up to the start of the file's bytes; MissingFilePart if there is no such part."""
        while self._file is None:
            if not await self._feed():
                raise MissingFilePart(f"The body has no `{self._field.decode()}` file part.")
        return self._file

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, as they arrive; the rest of the body is read (bounded) after it."""
        while True:
            while self._pending:
                chunk = self._pending.pop(0)
                for start in range(0, len(chunk), CHUNK_BYTES):
                    yield chunk[start : start + CHUNK_BYTES]
            if self._file_ended or not await self._feed():
                break
        while await self._feed():
            self._pending.clear()

    async def discard_rest(self) -> None:
        """Read and drop up to DRAIN_BYTES more of the body, so the answer reaches the client."""
        drained = 0
        while not self._stream_ended and drained <= DRAIN_BYTES:
            try:
                chunk = await anext(self._stream)
            except StopAsyncIteration:
                self._stream_ended = True
                return
            drained += len(chunk)

    async def _feed(self) -> bool:
        if self._stream_ended:
            return False
        try:
            chunk = await anext(self._stream)
        except StopAsyncIteration:
            self._stream_ended = True
            return False
        self._body_bytes += len(chunk)
        if self._body_bytes > self.max_body_bytes:
            raise UploadTooLarge(self._too_large())
        try:
            self._parser.write(chunk)
        except MultipartParseError as error:
            raise UploadError("The multipart body is malformed.") from error
        if self._file_bytes > self._max_file_bytes:
            raise UploadTooLarge(self._too_large())
        return True

    def _too_large(self) -> str:
        return f"The file is larger than {self._max_file_bytes} bytes."

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        is_file = (
            disposition == b"form-data"
            and options.get(b"name") == self._field
            and (b"filename" in options or b"filename*" in options)
            and not self._file_seen
        )
        if not is_file:
            return
        self._in_file = self._file_seen = True
        raw_name = _filename_option(options)
        self._file = FilePart(
            filename=upload_filename(raw_name),
            content_type=media_type(self._headers.get(b"content-type", b"").decode("latin-1")),
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._file_bytes += end - start
            self._pending.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_ended = True
