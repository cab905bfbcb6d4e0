"""enliven: bring a still portrait to life.

    import enliven
    enliven.animate("me.jpg", "driver.mp4", "out.mp4")
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Keep `import enliven` light: MediaPipe and PyAV load only when a function is first used.
    if name in {"animate", "demo", "extract_motion", "render_motion", "AnimateOptions"}:
        from enliven import api, options

        return getattr(api, name, None) or getattr(options, name)
    raise AttributeError(f"module 'enliven' has no attribute {name!r}")


__all__ = ["AnimateOptions", "__version__", "animate", "demo", "extract_motion", "render_motion"]
