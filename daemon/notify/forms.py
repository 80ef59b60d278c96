"""What the local receiver needs to read a message sent with a picture: a multipart/form-data body's fields and
files, and whether a file is a real PNG (its signature and a well-formed IHDR chunk, CRC included), as the
platforms check before they accept one. Pure; the standard library's MIME parser does the parsing.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


def parse_form(content_type: str, body: bytes) -> Form | None:
    """A multipart/form-data body's text fields and files by name; None when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        payload = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = UploadedFile(filename, part.get_content_type(), payload)
        else:
            form.fields[name] = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return form


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, read from its IHDR chunk; None when `data` is not a PNG."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE):
        return None
    length, kind = struct.unpack(">I4s", data[8:16])
    if length != 13 or kind != b"IHDR":
        return None
    header, (crc,) = data[16:29], struct.unpack(">I", data[29:33])
    if zlib.crc32(kind + header) != crc:
        return None
    width, height = struct.unpack(">II", header[:8])
    return (width, height) if width > 0 and height > 0 else None
