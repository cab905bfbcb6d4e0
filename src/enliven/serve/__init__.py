"""``enliven serve``: an HTTP job API over the same ``enliven.api`` calls as the CLI (``http.create_app``), with
jobs kept as files under a data folder (``jobs.JobStore``). Needs the ``app`` extra (FastAPI, uvicorn)."""

from __future__ import annotations

from enliven.errors import EnlivenError


def need_app_extra(what: str):
    """Import check for the ``app`` extra: one line saying how to install it, not a traceback."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EnlivenError(f"{what} needs the app extra ({exc.name} is missing): pip install 'enliven[app]'") from None


def serve(host: str = "127.0.0.1", port: int = 8000, data_dir: str = "enliven-data", **options) -> None:
    """Run the job API until interrupted; ``options``: ``http.create_app``'s (workers, queue size, limits)."""
    need_app_extra("enliven serve")
    import uvicorn

    from enliven.serve.http import create_app

    uvicorn.run(create_app(data_dir, **options), host=host, port=port, log_level="info")
