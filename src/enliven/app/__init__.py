"""``enliven app``: the web page (Gradio), built in ``page``. Needs the ``app`` extra."""

from __future__ import annotations

from enliven.errors import EnlivenError


def launch(host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until interrupted."""
    try:
        from enliven.app.page import THEME, build_page
    except ImportError as exc:
        raise EnlivenError(
            f"enliven app needs the app extra ({exc.name} is missing): pip install 'enliven[app]'") from None
    print(f"enliven app: open http://{host}:{port}/", flush=True)
    build_page().queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, theme=THEME, show_error=True, quiet=True, inbrowser=False,
    )
