"""A local stand-in for Slack, Discord, Telegram and any JSON webhook: records what it receives.

It answers each platform the way the real one does (Slack "ok", Discord's message with `?wait=true`, Telegram's
`{"ok": true, "result": ...}`), recognising the platform by the request path, and can be told to answer 429 (in
that platform's shape, with its retry hint), 500 or any other status for the next N requests. Telegram messages
are checked like Telegram does: an unsupported HTML tag is refused with 400 "can't parse entities".

Messages with a picture come as the platforms take them: Telegram's `sendPhoto` as multipart/form-data (chat_id,
photo, caption of at most 1,024 characters as shown, parse_mode), a Discord webhook as multipart with
`payload_json` and `files[n]` (an embed's `attachment://<name>` must name one of them). A file that is not a PNG
(signature and IHDR checked) is refused with 400, as the platform refuses an image it cannot process; the
accepted image bytes are kept (`Received.images`).

Used by the tests, by `marginguard demo` to print the alerts it receives, and on its own:

    marginguard receiver --port 8787      (or: python -m daemon.notify.receiver --port 8787)

Control endpoints (for another process): POST /_receiver/fail {"status": 429, "times": 2, "retry_after": 1,
"platform": "discord"}; GET /_receiver/received -> the accepted requests' bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from daemon.notify.forms import Form, parse_form, png_size

PLATFORMS = ("slack", "discord", "telegram", "webhook")
TELEGRAM_CAPTION_MAX = 1024  # characters as shown, markup aside
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span"}
TELEGRAM_TAGS |= {"tg-spoiler", "tg-emoji", "blockquote"}


def platform_of(path: str) -> str:
    if path.startswith("/bot") and path.endswith(("/sendMessage", "/sendPhoto")):
        return "telegram"
    if path.startswith("/api/webhooks/"):
        return "discord"
    if path.startswith("/services/"):
        return "slack"
    return "webhook"


@dataclass(frozen=True, slots=True)
class Received:
    platform: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.monotonic() on arrival
    form: Form | None = None  # a multipart/form-data request's fields and files

    @property
    def json(self) -> Any:
        """The message as a document: the JSON body; for a form, Discord's `payload_json` or Telegram's fields."""
        if self.form is None:
            return json.loads(self.body)
        if self.platform == "discord":
            return json.loads(self.form.fields.get("payload_json", "null"))
        return dict(self.form.fields)

    @property
    def images(self) -> list[bytes]:
        """The files sent with the message, in the order sent."""
        return [] if self.form is None else [upload.data for upload in self.form.files.values()]

    def describe(self) -> str:
        """One line for a person: the message's headline as the platform would show it in a preview."""
        try:
            doc = self.json
        except ValueError:
            return f"[{self.platform}] (not JSON) {self.body[:120]!r}"
        if self.platform == "slack":
            text = str(doc.get("text", ""))
        elif self.platform == "discord":
            text = str(doc.get("content", ""))
        elif self.platform == "telegram":
            first = re.sub(r"<[^>]+>", "", str(doc.get("text") or doc.get("caption", ""))).split("\n")
            text = html.unescape(" — ".join(part for part in first[:3] if part))
        else:
            text = f"{doc.get('status', '?')} {doc.get('severity', '?')}: {doc.get('summary', '')}"
        pictures = "".join(
            f" [+ chart {size[0]}x{size[1]}]" for size in map(png_size, self.images) if size is not None
        )
        return f"[{self.platform}] {text}{pictures}"


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float | None
    platform: str | None


class _TelegramHtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS and self.problem is None:
            self.problem = f'Unsupported start tag "{tag}"'


def telegram_entities_problem(text: str) -> str | None:
    checker = _TelegramHtmlCheck()
    checker.feed(text)
    checker.close()
    return checker.problem


class Receiver:
    """The server. `accepted` holds what it answered 2xx to, `requests` every request, in arrival order."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, on_accept: Callable[[Received], None] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.on_accept = on_accept
        self.accepted: list[Received] = []
        self.requests: list[Received] = []
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Condition | None = None
        # Set: answers go out at once. Cleared by `hold_answers`: each message is taken (recorded as accepted)
        # and its answer waits — a sender sees a slow platform whose answer may be lost.
        self._answering = asyncio.Event()
        self._answering.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail(
        self, status: int, times: int, retry_after: float | None = None, platform: str | None = None
    ) -> None:
        """Answer `status` to the next `times` requests (of `platform`, or any); 429s carry `retry_after`."""
        self._failures.append(_Failure(status, times, retry_after, platform))

    def hold_answers(self) -> None:
        """Take messages but answer none until `release_answers`."""
        self._answering.clear()

    def release_answers(self) -> None:
        self._answering.set()

    def received(self, platform: str | None = None) -> list[Received]:
        return [r for r in self.accepted if platform is None or r.platform == platform]

    async def wait_for(self, count: int, platform: str | None = None) -> list[Received]:
        """The accepted requests once there are at least `count` (of `platform`). Bound it with asyncio.timeout."""
        assert self._changed is not None, "start the receiver first"
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.received(platform)) >= count)
        return self.received(platform)

    async def start(self) -> Receiver:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/_receiver/fail", self._control_fail)
        app.router.add_get("/_receiver/received", self._control_received)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers ----------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        platform = platform_of(request.path)
        form = parse_form(request.headers.get("Content-Type", ""), body)
        failure = self._take_failure(platform)
        if failure:
            response = self._failure_response(platform, failure)
        elif form is not None:
            response = self._answer_form(platform, request.path, form, request.query.get("wait") == "true")
        else:
            response = self._answer(platform, body, request.query.get("wait") == "true", request.path)
        record = Received(
            platform,
            request.path,
            dict(request.query),
            dict(request.headers),
            body,
            response.status,
            time.monotonic(),
            form,
        )
        self.requests.append(record)
        if 200 <= response.status < 300:
            self.accepted.append(record)
            if self.on_accept is not None:
                self.on_accept(record)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        await self._answering.wait()
        return response

    def _take_failure(self, platform: str) -> _Failure | None:
        for failure in self._failures:
            if failure.times > 0 and failure.platform in (None, platform):
                failure.times -= 1
                return failure
        return None

    def _answer(self, platform: str, body: bytes, wait: bool, path: str = "") -> web.Response:
        try:
            doc = json.loads(body)
        except ValueError:
            return self._refusal(platform, 400, "invalid_payload")
        if path.endswith("/sendPhoto"):
            return self._refusal(platform, 400, "Bad Request: there is no photo in the request")
        if platform == "slack":
            return web.Response(text="ok")
        if platform == "discord":
            if not wait:
                return web.Response(status=204)  # Discord confirms nothing unless asked to wait
            return web.json_response(
                {"id": str(len(self.accepted) + 1), "type": 0, "content": doc.get("content")}
            )
        if platform == "telegram":
            if not doc.get("chat_id"):
                return self._refusal(platform, 400, "Bad Request: chat_id is empty")
            if not doc.get("text"):
                return self._refusal(platform, 400, "Bad Request: message text is empty")
            problem = doc.get("parse_mode") == "HTML" and telegram_entities_problem(doc["text"])
            if problem:
                return self._refusal(platform, 400, f"Bad Request: can't parse entities: {problem}")
            message = {
                "message_id": len(self.accepted) + 1,
                "chat": {"id": doc["chat_id"]},
                "text": doc["text"],
            }
            return web.json_response({"ok": True, "result": message})
        return web.json_response({"ok": True})

    def _answer_form(self, platform: str, path: str, form: Form, wait: bool) -> web.Response:
        """A multipart message: Telegram's sendPhoto or a Discord webhook with files, checked like they check."""
        bad_files = [name for name, upload in form.files.items() if png_size(upload.data) is None]
        if platform == "telegram":
            photo = form.files.get("photo")
            if not form.fields.get("chat_id"):
                return self._refusal(platform, 400, "Bad Request: chat_id is empty")
            if not path.endswith("/sendPhoto") or photo is None:
                return self._refusal(platform, 400, "Bad Request: there is no photo in the request")
            size = png_size(photo.data)
            if size is None:
                return self._refusal(platform, 400, "Bad Request: IMAGE_PROCESS_FAILED")
            if sum(size) > 10_000 or max(size) > 20 * min(size):
                return self._refusal(platform, 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            caption = form.fields.get("caption", "")
            if len(html.unescape(re.sub(r"<[^>]+>", "", caption))) > TELEGRAM_CAPTION_MAX:
                return self._refusal(platform, 400, "Bad Request: message caption is too long")
            problem = form.fields.get("parse_mode") == "HTML" and telegram_entities_problem(caption)
            if problem:
                return self._refusal(platform, 400, f"Bad Request: can't parse entities: {problem}")
            photos = [{"file_id": f"photo-{len(self.accepted) + 1}", "width": size[0], "height": size[1]}]
            message = {
                "message_id": len(self.accepted) + 1,
                "chat": {"id": form.fields["chat_id"]},
                "photo": photos,
                "caption": caption,
            }
            return web.json_response({"ok": True, "result": message})
        if platform == "discord":
            try:
                doc = json.loads(form.fields["payload_json"])
            except (KeyError, ValueError):
                return self._refusal(platform, 400, "Cannot send an empty message")
            names = {upload.filename for upload in form.files.values()}
            wanted = {
                str(embed.get("image", {}).get("url", ""))[len("attachment://") :]
                for embed in doc.get("embeds", [])
                if str(embed.get("image", {}).get("url", "")).startswith("attachment://")
            }
            stray = [name for name in form.files if not re.fullmatch(r"files\[\d+\]", name)]
            if bad_files or stray or not wanted <= names:
                return self._refusal(platform, 400, "Invalid Form Body")
            if not wait:
                return web.Response(status=204)
            files = [
                {"id": str(i), "filename": upload.filename} for i, upload in enumerate(form.files.values())
            ]
            body = {"id": str(len(self.accepted) + 1), "type": 0, "content": doc.get("content")}
            return web.json_response({**body, "attachments": files})
        return self._refusal(platform, 400, "invalid_payload")  # Slack and webhooks take JSON only

    def _failure_response(self, platform: str, failure: _Failure) -> web.Response:
        if failure.status != 429:
            return self._refusal(
                platform, failure.status, "Internal Server Error" if failure.status >= 500 else ""
            )
        seconds = 1.0 if failure.retry_after is None else failure.retry_after
        whole = str(math.ceil(seconds))
        if platform == "discord":
            body = {"message": "You are being rate limited.", "retry_after": seconds, "global": False}
            return web.json_response(body, status=429, headers={"Retry-After": whole})
        if platform == "telegram":
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {whole}",
                "parameters": {"retry_after": int(whole)},
            }
            return web.json_response(body, status=429)
        return web.Response(status=429, text="rate_limited", headers={"Retry-After": whole})

    def _refusal(self, platform: str, status: int, description: str) -> web.Response:
        if platform == "telegram":
            body = {"ok": False, "error_code": status, "description": description or f"Error {status}"}
            return web.json_response(body, status=status)
        if platform == "discord":
            return web.json_response({"message": description or f"{status}", "code": 0}, status=status)
        return web.Response(status=status, text=description or f"error {status}")

    async def _control_fail(self, request: web.Request) -> web.Response:
        doc = await request.json()
        self.fail(int(doc["status"]), int(doc.get("times", 1)), doc.get("retry_after"), doc.get("platform"))
        return web.json_response({"ok": True})

    async def _control_received(self, _request: web.Request) -> web.Response:
        bodies = [
            {
                "platform": r.platform,
                "path": r.path,
                # A form's document as JSON text (its files are binary: their sizes say what came).
                "body": r.body.decode() if r.form is None else json.dumps(r.json),
                "images": [png_size(image) for image in r.images],
            }
            for r in self.accepted
        ]
        return web.json_response(bodies)


async def serve_and_print(host: str, port: int) -> None:
    """Print every accepted message until cancelled (`marginguard receiver`)."""
    receiver = Receiver(host, port, on_accept=lambda record: print(record.describe(), flush=True))
    async with receiver:
        print(
            f"marginguard receiver listening on {receiver.url} (webhook sinks: {receiver.url}/alerts)",
            flush=True,
        )
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Receive marginguard alerts locally and print them.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_and_print(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
