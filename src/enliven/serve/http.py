"""The HTTP job API of ``enliven serve`` (FastAPI): submit an animation, poll it, download it, cancel it.

Every refusal is JSON ``{"error": "<one line>"}``; for bad input it is the line the CLI prints after
``enliven: error:``, since both run the same checks of the same library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from enliven import __version__, api, engines
from enliven.errors import EnlivenError
from enliven.io.images import IMAGE_SUFFIXES, check_pixel_count, pixel_limit
from enliven.io.video import VideoReader
from enliven.motion.audio import AUDIO_SUFFIXES
from enliven.options import AnimateOptions
from enliven.serve.jobs import FINISHED, Job, JobStore, QueueFull

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # a few minutes of phone video; a request over it gets 413
# Options that name server paths, run code or belong to the server: a client cannot set them.
SERVER_OPTIONS = {"weights": "names a folder on the server", "allow_pickle": "would unpickle an upload",
                  "progress": "is the server's", "on_frame": "is the server's"}
SOURCE_SUFFIXES = IMAGE_SUFFIXES | api.VIDEO_SUFFIXES
DRIVING_SUFFIXES = IMAGE_SUFFIXES | api.VIDEO_SUFFIXES | AUDIO_SUFFIXES | {".npz"}
MAX_TEXT = 2000  # characters of text to speak

_ANIMATE_BODY = {  # the multipart form, for /docs (the endpoint reads the form itself: a field may be a file or text)
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "source": {"type": "string", "format": "binary",
                       "description": "portrait picture or video; omitted: the bundled portrait"},
            "driving": {"type": "string", "format": "binary",
                        "description": "driving video, image (the result is a .png), motion template .npz or audio "
                                       "file; or the text preset:NAME"},
            "text": {"type": "string", "description": "instead of driving: text to speak (espeak-ng)"},
            "voice": {"type": "string", "description": "espeak-ng voice for text (default en)"},
            "options": {"type": "string", "description": 'animate\'s options as a JSON object, e.g. '
                                                         '{"multiplier": 1.2, "controls": {"smile": 0.5}}'},
        },
    }}}},
}


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, from its Content-Length before anything is
    read, or as soon as the bytes streamed past the limit (a body sent without a length)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send, int(length))
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send, size: int) -> None:
        response = _error(413, f"upload too large: {size:,} bytes or more, the limit is {self.limit:,}")
        await response({"type": "http"}, None, send)


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(
    data_dir: str | Path, workers: int = 1, queue_size: int = 16, keep_hours: float = 24.0,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_pixels: int = 40_000_000, ray_address: str | None = None,
) -> FastAPI:
    """The API over a job store in ``data_dir`` (jobs there from an earlier run are picked up). ``ray_address``:
    run the jobs on that Ray cluster (``enliven.batch.dispatch``), ``workers`` at a time, instead of here."""
    runner = None
    if ray_address:
        from enliven.batch.dispatch import RayDispatcher

        runner = RayDispatcher(ray_address, workers, max_pixels)
    store = JobStore(data_dir, workers, queue_size, keep_hours * 3600, max_pixels, runner=runner)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(store.close)  # running jobs go back to the queue, for the next start

    app = FastAPI(
        title="enliven", version=__version__, lifespan=lifespan,
        description="Animate a still portrait from a driving video, picture, template, preset, audio or text.",
    )
    app.state.store = store
    app.add_middleware(UploadLimit, limit=max_upload_bytes)

    @app.exception_handler(EnlivenError)
    async def bad_input(request: Request, exc: EnlivenError) -> JSONResponse:
        return _error(400, str(exc))

    @app.post("/v1/animate", status_code=202, openapi_extra=_ANIMATE_BODY,
              summary="Queue an animation; returns its id")
    async def submit(request: Request) -> JSONResponse:
        try:
            store.check_room()
        except QueueFull as exc:  # before the upload is saved
            return _error(503, str(exc), **{"Retry-After": "30"})
        form = await request.form(max_files=2, max_fields=8)
        try:
            job_id, folder = store.new_folder()
        except QueueFull as exc:
            return _error(503, str(exc), **{"Retry-After": "30"})
        try:
            try:
                job = _job_from_form(job_id, folder, form, max_pixels)
            except EnlivenError as exc:  # the client's names, not the server's folders
                raise EnlivenError(str(exc).replace(str(folder) + os.sep, "")) from None
            store.submit(job)
        except QueueFull as exc:
            store.discard(job_id)
            return _error(503, str(exc), **{"Retry-After": "30"})
        except BaseException:
            store.discard(job_id)
            raise
        finally:
            await form.close()
        return JSONResponse({"id": job.id}, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs/{job_id}", summary="A job's state and progress")
    def status(job_id: str) -> JSONResponse:
        job = store.get(job_id)
        return JSONResponse(job.public()) if job else _error(404, f"no such job: {job_id}")

    @app.get("/v1/jobs/{job_id}/result", summary="The finished video (.mp4) or picture (.png)")
    def result(job_id: str) -> Response:
        job = store.get(job_id)
        if job is None:
            return _error(404, f"no such job: {job_id}")
        if job.state != "done":
            return _error(409, f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
        path = store.result_path(job)
        media = "image/png" if path.suffix == ".png" else "video/mp4"
        return FileResponse(path, media_type=media, filename=f"enliven-{job_id}{path.suffix}")

    @app.delete("/v1/jobs/{job_id}", summary="Cancel a queued or running job; delete a finished one")
    def cancel(job_id: str) -> Response:
        job = store.get(job_id)
        if job is None:
            return _error(404, f"no such job: {job_id}")
        if job.state in FINISHED:
            store.remove(job_id)
            return Response(status_code=204)
        return JSONResponse(store.cancel(job_id).public(), status_code=202)

    return app


def _job_from_form(job_id: str, folder: Path, form, max_pixels: int) -> Job:
    """Check the form and save its files into ``folder`` under names of our own; bad input raises EnlivenError."""
    unknown = sorted(set(form.keys()) - {"source", "driving", "text", "voice", "options"})
    if unknown:
        raise EnlivenError(f"unknown form field(s): {', '.join(unknown)}")
    options = _options(form.get("options"))
    source = form.get("source")
    driving, text = form.get("driving"), form.get("text")
    if (driving is None) == (text is None):
        raise EnlivenError("give exactly one motion: DRIVING, --audio FILE or --text TEXT")
    with pixel_limit(max_pixels):
        source_name = _save(source, folder, "source", SOURCE_SUFFIXES) if source is not None else None
        driving_name = None
        if isinstance(driving, str):
            if not driving.startswith(api.PRESET_PREFIX):
                raise EnlivenError(f"driving must be an uploaded file or preset:NAME, not {driving[:80]!r}")
            from enliven.motion.presets import get_preset

            get_preset(driving[len(api.PRESET_PREFIX):])
            driving_name = driving
        elif driving is not None:
            driving_name = _save(driving, folder, "driving", DRIVING_SUFFIXES)
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT):
        raise EnlivenError(f"text must be 1 to {MAX_TEXT} characters")
    voice = form.get("voice") or "en"
    if not isinstance(voice, str) or len(voice) > 40:
        raise EnlivenError("voice must be an espeak-ng voice name, like en or de")
    still = driving_name is not None and Path(driving_name).suffix.lower() in IMAGE_SUFFIXES
    if source_name and Path(source_name).suffix.lower() in api.VIDEO_SUFFIXES and still:
        raise EnlivenError("a video source needs a driving video, template or preset, not an image")
    return Job(job_id, source_name, driving_name, text, voice, options, "result.png" if still else "result.mp4")


def _options(raw) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise EnlivenError("options must be a JSON object given as a form field, not a file")
    try:
        options = json.loads(raw)
    except ValueError:
        raise EnlivenError(f"options are not valid JSON: {raw[:80]!r}") from None
    if not isinstance(options, dict):
        raise EnlivenError("options must be a JSON object of animate's options")
    for name, why in SERVER_OPTIONS.items():
        if name in options:
            raise EnlivenError(f"option {name!r} cannot be set by a client: it {why}")
    AnimateOptions.from_kwargs(**options)  # every check of animate's options, now rather than in the queue
    if options.get("engine", "mesh") not in engines.available():
        engines.create(options["engine"])  # the library's "unknown engine" line
    return options


def _save(upload, folder: Path, role: str, suffixes: set[str]) -> str:
    """Copy an upload to ``folder/ROLE.SUFFIX`` (only its suffix is taken from the client's name) and check that it
    reads as what it claims to be, within the pixel limit."""
    if not isinstance(upload, UploadFile):
        raise EnlivenError(f"{role} must be an uploaded file")
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in suffixes:
        raise EnlivenError(f"{role} must be one of {', '.join(sorted(suffixes))}, not {upload.filename!r}")
    path = folder / f"{role}{suffix}"
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    if path.stat().st_size == 0:
        raise EnlivenError(f"{role} is empty: {upload.filename}")
    if suffix in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as image:  # the header only: the size is checked before any decoding
                check_pixel_count(*image.size, f"{role} {upload.filename}")
        except (UnidentifiedImageError, OSError):
            raise EnlivenError(f"{role} {upload.filename} is not a picture this build can read") from None
    elif suffix in api.VIDEO_SUFFIXES:
        VideoReader(path)  # opens the file and checks the frame size; one line if it is not a video
    return path.name
