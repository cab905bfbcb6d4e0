"""The ``enliven`` command. Thin: parse arguments, call ``enliven.api``, print one line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from enliven import __version__
from enliven.errors import EnlivenError
from enliven.io.images import DEFAULT_MAX_PIXELS, pixel_limit
from enliven.motion.align import Controls
from enliven.motion.tracking import TrackOptions

EXAMPLES = """\
examples:
  enliven demo -o demo.mp4                         animate the bundled portrait (no input needed)
  enliven animate me.jpg driver.mp4 -o out.mp4     my photo makes the driver's expressions
  enliven animate me.jpg smile.jpg -o out.png      one expression from a photo, as a still
  enliven motion extract driver.mp4 -o talk.npz    keep a driving motion as a small template
  enliven animate me.jpg talk.npz -o out.mp4       reuse it on any face
  enliven animate me.jpg preset:nod -o nod.mp4     built-in motions: see `enliven presets`
  enliven animate me.jpg --audio talk.wav -o out.mp4   lip motion, blinks and nods from speech
  enliven animate me.jpg --text "Hello!" -o out.mp4    speak the text (espeak-ng) and animate to it
"""


class Terminated(BaseException):
    """SIGTERM (``kill``), raised on the main thread like KeyboardInterrupt for Ctrl-C, so that ``finally`` blocks
    and ``atomic_output`` delete unfinished files; a BaseException so that ``except Exception`` cannot swallow it."""


EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 128 + signal.SIGINT, 128 + signal.SIGTERM


@contextlib.contextmanager
def _stop_cleanly_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into exceptions on the main thread; a repeated signal is ignored while the first one
    unwinds, so that a second Ctrl-C cannot cut the clean-up short and leave a temporary file behind."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A signal the caller chose to ignore (`nohup`, a background job of a script) stays ignored.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _pixel_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number of pixels, like 200000000, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _add_animation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("animation")
    g.add_argument("--engine", default="mesh",
                   help="rendering engine (default: mesh, needs no downloads); see `enliven engines`")
    g.add_argument("--absolute", action="store_true",
                   help="copy the driver's expression and head pose instead of its change from its first frame")
    g.add_argument("--multiplier", type=float, default=1.0, metavar="M",
                   help="scale the motion: 0 still, 1 as driven (default), 1.5 exaggerated")
    g.add_argument("--no-smooth", dest="smooth", action="store_false", help="turn off jitter smoothing of video motion")
    g.add_argument("--fps", type=float, default=None, help="output frame rate (default: the driving video's)")
    g.add_argument("--face-index", type=int, default=0, metavar="N",
                   help="which face to animate, 0 = the largest (default)")
    g.add_argument("--all-faces", action="store_true", help="animate every face in the source picture")
    d = p.add_argument_group("driving video (real footage: cuts, several people, zoom, lost faces)")
    d.add_argument("--driver-face", default="auto", metavar="auto|largest|N",
                   help="whose motion to follow: auto = the person on screen longest (default), largest = the largest "
                   "face in each frame, N = the N-th largest face in the first frame with faces")
    d.add_argument("--reference", default="neutral", metavar="neutral|first|N",
                   help="each shot's motion is measured from its least expressive frame (neutral, default), its first "
                   "frame, or frame N of the clip")
    d.add_argument("--follow-camera", action="store_true",
                   help="follow the driver's camera zoom and shift in full (default: within 0.9-1.1 zoom and ±10%% of "
                   "the face's width)")
    g.add_argument("--crop-scale", type=float, default=2.3, metavar="S",
                   help="face crop size as a multiple of the face (default 2.3)")
    g.add_argument("--no-audio", dest="mux_audio", action="store_false",
                   help="do not copy the driving audio into the output")
    g.add_argument("--allow-pickle", action="store_true",
                   help="accept a LivePortrait .pkl template as DRIVING (pickles can run code: trusted files only)")
    g.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    c = p.add_argument_group("manual controls (on top of the motion)")
    c.add_argument("--eyes-open", metavar="L,R",
                   help="eye open ratios as seen left to right in the picture (0 closed … 0.8 wide)")
    c.add_argument("--lip-open", type=float, metavar="R", help="inner-lip gap / mouth width (0 closed … 0.8)")
    c.add_argument("--normalize-lip", action="store_true",
                   help="start from a closed mouth (lips apart in the source are closed first)")
    for angle in ("yaw", "pitch", "roll"):
        c.add_argument(f"--{angle}", type=float, default=0.0, metavar="DEG",
                       help=f"add this {angle} to the head (degrees)")
    c.add_argument("--smile", type=float, default=0.0, help="1 broad smile, negative frown")
    c.add_argument("--brows", type=float, default=0.0, help="1 raised eyebrows, negative lowered")
    c.add_argument("--pout", type=float, default=0.0, help="1 pursed lips")
    c.add_argument("--wink", type=float, default=0.0, help="1 shuts the eye on the picture's left")
    c.add_argument("--gaze", metavar="X,Y", help="look aside: X 1 to the picture's right, -1 left; Y 1 down, -1 up")
    g.add_argument("--weights", metavar="DIR",
                   help="folder with the engine's weights (default: our cache, then the Hugging Face cache)")
    _add_engine_options(p)


def _option_dest(option) -> str:
    return "engine_option_" + option.cli_flag.lstrip("-").replace("-", "_")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """Each engine's own options, as its descriptor declares them, in a group per engine; a flag several engines
    take (the diffusion engines' --steps) is added once, in the first one's group, naming them all."""
    from enliven import engines

    takers: dict[str, list[str]] = {}
    for name, descriptor in engines.descriptors().items():
        for option in descriptor.options:
            takers.setdefault(option.cli_flag, []).append(name)
    added: set[str] = set()
    for name, descriptor in engines.descriptors().items():
        fresh = [o for o in descriptor.options if o.cli_flag not in added]
        if not fresh:
            continue
        together = {tuple(takers[o.cli_flag]) for o in fresh}
        shared = len(together) == 1 and len(next(iter(together))) > 1  # options that only engines sharing them take
        if shared:
            names = next(iter(together))
            systems = ", ".join(engines.describe(n).system for n in names)
            group = p.add_argument_group(f"{', '.join(names)} engines ({systems})")
        else:
            group = p.add_argument_group(f"{name} engine ({descriptor.system})")
        for option in fresh:
            added.add(option.cli_flag)
            who = takers[option.cli_flag]
            text = option.help if shared or len(who) == 1 else f"{', '.join(who)}: {option.help}"
            if option.is_switch:
                group.add_argument(option.cli_flag, dest=_option_dest(option), action="store_const",
                                   const=option.switch_value, help=text)
            else:
                group.add_argument(option.cli_flag, dest=_option_dest(option), type=option.parse,
                                   metavar=option.metavar or (None if option.choices else option.name.upper()),
                                   choices=option.choices, help=text)


def _engine_options(args: argparse.Namespace) -> dict:
    """The options given for the chosen engine (``--engine``), by its keywords; one given that it does not take is
    one clear error."""
    from enliven import engines

    chosen = engines.describe(args.engine)
    given = {}
    for descriptor in engines.descriptors().values():
        for option in descriptor.options:
            value = getattr(args, _option_dest(option), None)
            if value is None or option.cli_flag in given:
                continue
            if chosen.option(option.name) is None or chosen.option(option.name).cli_flag != option.cli_flag:
                raise EnlivenError(f"engine {args.engine!r} has no option {option.cli_flag}")
            given[option.cli_flag] = (option.name, value)
    return dict(given.values())


def _animation_kwargs(args: argparse.Namespace) -> dict:
    engine_options = _engine_options(args)
    eyes = None
    if args.eyes_open:
        try:
            eyes = tuple(float(v) for v in args.eyes_open.split(","))
        except ValueError:
            raise EnlivenError(f"--eyes-open takes two numbers like 0.3,0.3, not {args.eyes_open!r}") from None
        eyes = eyes * 2 if len(eyes) == 1 else eyes
    gaze = (0.0, 0.0)
    if args.gaze:
        try:
            gaze = tuple(float(v) for v in args.gaze.split(","))
        except ValueError:
            raise EnlivenError(f"--gaze takes two numbers like 0.5,0, not {args.gaze!r}") from None
        if len(gaze) != 2:
            raise EnlivenError(f"--gaze takes two numbers like 0.5,0, not {args.gaze!r}")
    controls = Controls(
        gaze=gaze, eyes_open=eyes, lip_open=args.lip_open, yaw=args.yaw, pitch=args.pitch, roll=args.roll,
        smile=args.smile, brows=args.brows, pout=args.pout, wink=args.wink,
    )
    return dict(
        controls=controls, engine=args.engine, relative=not args.absolute, multiplier=args.multiplier,
        smooth=args.smooth, normalize_lip=args.normalize_lip,
        driver_face=args.driver_face, reference=args.reference, follow_camera=args.follow_camera,
        fps=args.fps, face_index=args.face_index, all_faces=args.all_faces, crop_scale=args.crop_scale,
        audio=args.mux_audio, crf=args.crf,
        weights=args.weights, engine_options=engine_options, allow_pickle=args.allow_pickle, progress=not args.quiet,
    )


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", default="mesh", help="comma-separated engines to compare (default: mesh)")
    p.add_argument("-o", "--output", required=True, help="report folder (report.json, report.md, plots)")
    p.add_argument("--weights", metavar="DIR", help="weights for engines that need them")
    p.add_argument("--identity-every", type=int, default=5, metavar="N",
                   help="identity similarity on every Nth frame (dlib, ~90 ms a face); 0 skips it")


def _with_parents(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class Sub(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("parents", [common])
            super().__init__(*args, **kwargs)

    return Sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enliven",
        description="Bring a still portrait to life: a photo plus a motion (video, photo, template or preset) "
        "becomes a video of that face moving, pasted back into the original picture. Runs offline on a CPU.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"enliven {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    max_pixels_help = (f"refuse pictures larger than N pixels, width × height (default {DEFAULT_MAX_PIXELS:,}); "
                       "checked on the file's header, before anything is decoded")
    parser.add_argument(
        "--max-pixels", type=_pixel_count, default=DEFAULT_MAX_PIXELS, metavar="N", help=max_pixels_help
    )
    # Also accepted after the command (`enliven demo -q`); SUPPRESS keeps it from resetting the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--max-pixels", type=_pixel_count, default=argparse.SUPPRESS, metavar="N", help=max_pixels_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_with_parents(common))

    p = sub.add_parser("demo", help="animate the bundled portrait with a built-in motion (no input needed)")
    p.add_argument("-o", "--output", default="demo.mp4", help="output video (default: demo.mp4)")
    p.add_argument("--preset", default="demo", help="built-in motion (default: demo); see `enliven presets`")
    _add_animation_options(p)

    p = sub.add_parser(
        "animate", help="animate a portrait with a driving video, image, template or preset",
        description="Animate the face in SOURCE with the motion of DRIVING.",
    )
    p.add_argument("source", help="portrait image (png, jpg, ...), or a video to re-animate (video-to-video editing)")
    p.add_argument("driving", nargs="?", help="driving video, driving image (writes a still), motion template .npz, "
                   "audio file, or preset:NAME")
    p.add_argument("--audio", metavar="FILE",
                   help="drive with speech audio instead (wav, mp3, ...; muxed into the output)")
    p.add_argument("--text", help="drive with this text, spoken by espeak-ng")
    p.add_argument("--voice", default="en", help="espeak-ng voice for --text (default: en)")
    p.add_argument("-o", "--output", required=True, help="output file: .mp4 (or .png/.jpg for a driving image)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON on stdout (frames, shots, who was "
                   "followed, frames held)")
    _add_animation_options(p)

    motion = sub.add_parser("motion", help="extract, inspect and reuse motion templates")
    msub = motion.add_subparsers(dest="motion_command", metavar="ACTION", required=True)
    p = msub.add_parser("extract", help="save a driving video's motion as a template .npz (no pickle)")
    p.add_argument("video", help="driving video")
    p.add_argument("-o", "--output", required=True, help="template file (.npz)")
    p.add_argument("--engine", default="mesh", help="also store this engine's own motion (keypoint: LivePortrait's)")
    p.add_argument("--weights", metavar="DIR", help="weights for --engine keypoint")
    p.add_argument("--driver-face", default="auto", metavar="auto|largest|N", help="whose motion to keep (as animate)")
    p.add_argument("--reference", default="neutral", metavar="neutral|first|N",
                   help="each shot's reference frame (as animate)")
    p = msub.add_parser("import-pkl", help="convert a LivePortrait .pkl template to .npz (needs --allow-pickle)")
    p.add_argument("pkl", help="LivePortrait template (.pkl)")
    p.add_argument("-o", "--output", required=True, help="template file (.npz)")
    p.add_argument("--allow-pickle", action="store_true", help="I trust this file: unpickling can run code")
    p = msub.add_parser("render", help="draw a motion as landmark images (eyes, brows, inner lips, pupils)")
    p.add_argument("template", help="template .npz or preset:NAME")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    p.add_argument("--size", type=int, default=512, help="picture side in pixels (default 512)")

    weights = sub.add_parser("weights", help="download and convert model weights (for engines that need them)")
    wsub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = wsub.add_parser("download", help="download a model's weights from the Hugging Face Hub (needs a network)")
    p.add_argument("model", choices=("liveportrait", "follow-your-emoji", "hunyuan-portrait"), help="which model")
    p.add_argument("--dir", help="where to put them (default: ~/.cache/enliven/MODEL or $ENLIVEN_WEIGHTS/MODEL)")
    p = wsub.add_parser("convert", help="write .safetensors beside official .pth files (then preferred when loading)")
    p.add_argument("dir", help="folder with the official LivePortrait, Follow-Your-Emoji or HunyuanPortrait layout")
    p = wsub.add_parser("export-onnx", help="export the keypoint engine to ONNX graphs (for --backend onnx)")
    p.add_argument("dir", help="folder with the official LivePortrait layout")
    p.add_argument("-o", "--output", help="folder for the .onnx files (default: DIR/onnx)")

    bench = sub.add_parser("bench", help="measure how faithful the engines are (self- and cross-reenactment)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="KIND", required=True)
    p = bsub.add_parser("self", help="each video's first frame animated by the video itself, scored against it")
    p.add_argument("videos", help="folder of videos")
    _add_bench_options(p)
    p = bsub.add_parser("cross", help="every source picture × every driving video")
    p.add_argument("sources", help="folder of portrait pictures")
    p.add_argument("driving", help="folder of driving videos")
    _add_bench_options(p)

    p = sub.add_parser("batch", help="animate many portraits on Ray, here or on a cluster (enliven[batch])",
                       description="Run every job of MANIFEST (.csv or .jsonl), or every picture of --sources with "
                       "every motion of --driving, into OUT_DIR; finished outputs are skipped, so a rerun resumes. "
                       "Exit 0 all done, 1 some jobs failed (see the report), 2 bad manifest.")
    p.add_argument("manifest", nargs="?", help="CSV or JSONL: source; driving, audio, text or preset; output; options")
    p.add_argument("--sources", metavar="DIR", help="folder of portrait pictures (with --driving)")
    p.add_argument("--driving", metavar="DIR", help="folder of driving videos, pictures, audio or templates, or "
                   "preset:NAME (with --sources)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the outputs and the report")
    p.add_argument("--address", help="Ray cluster to run on: auto, HOST:PORT or ray://HOST:10001 (default: Ray "
                   "started here with this machine's cores)")
    p.add_argument("--num-cpus", type=int, help="cores of the Ray started here (default: all)")
    p.add_argument("--engine", help="engine of every job without its own (default: mesh)")
    p.add_argument("--options", metavar="JSON", help="animate's options for every job, e.g. '{\"crf\": 20}'")
    p.add_argument("--retries", type=int, default=2, help="tries after a worker died or an internal error (default 2)")
    p.add_argument("--job-timeout", type=float, default=4.0, metavar="HOURS",
                   help="a job running longer is stopped and retried (default 4; 0: no limit)")
    p.add_argument("--max-workers", type=int, help="at most this many workers per engine (default: the room)")
    p.add_argument("--gpus-per-worker", type=float, default=1.0, help="for GPU engines (default 1)")
    p.add_argument("--report", help="report file (default OUT_DIR/batch-report.jsonl)")

    p = sub.add_parser("app", help="open the web page: animate, and edit a still with live sliders (enliven[app])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p = sub.add_parser("serve", help="HTTP job API: POST /v1/animate, poll, download, cancel (enliven[app])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data-dir", default="enliven-data", help="folder for jobs and results (default ./enliven-data)")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once (default 1)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; more are refused with 503")
    p.add_argument("--keep-hours", type=float, default=24.0, help="finished jobs are deleted after this (default 24)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="larger requests get 413 (default 200)")
    p.add_argument("--max-upload-pixels", type=_pixel_count, default=40_000_000, metavar="N",
                   help="largest uploaded picture or video frame, width × height (default 40,000,000)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the jobs on this Ray cluster (auto, HOST:PORT, "
                   "ray://HOST:10001, or local), --workers at a time (enliven[batch])")
    p = sub.add_parser("train", help="train an engine's networks on your videos (audio-diffusion; torchrun for "
                       "several GPUs)")
    p.add_argument("engine", choices=["audio-diffusion"], help="what to train")
    p.add_argument("config", nargs="?", help="TOML training config (--print-config writes the documented defaults)")
    p.add_argument("--resume", default="latest", metavar="WHERE",
                   help="latest (default: the run's newest checkpoint, if any), none, or a checkpoint folder")
    p.add_argument("--preprocess-only", action="store_true", help="prepare the video caches, do not train")
    p.add_argument("--print-config", action="store_true", help="print the default config, every setting explained")
    sub.add_parser("presets", help="list the built-in motions")
    sub.add_parser("engines", help="list rendering engines and what each needs")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with pixel_limit(args.max_pixels):
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    from enliven import api

    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if args.command == "demo":
        say(api.demo(args.output, preset=args.preset, **_animation_kwargs(args)).summary())
    elif args.command == "animate":
        given = [v for v in (args.driving, args.audio, args.text) if v]
        if len(given) != 1:
            raise EnlivenError("give exactly one motion: DRIVING, --audio FILE or --text TEXT")
        if args.text:
            result = api.animate_text(args.source, args.text, args.output, voice=args.voice, **_animation_kwargs(args))
        else:
            result = api.animate(args.source, args.driving or args.audio, args.output, **_animation_kwargs(args))
        say(result.summary())
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
    elif args.command == "motion" and args.motion_command == "extract":
        frames, lost = api.extract_motion(
            args.video, args.output, progress=not args.quiet, engine=args.engine, weights=args.weights,
            tracking=TrackOptions(args.driver_face, args.reference),
        )
        say(f"wrote {args.output}: {frames} frame(s)" + (f", face lost in {lost}" if lost else ""))
    elif args.command == "motion" and args.motion_command == "import-pkl":
        frames = api.import_liveportrait_template(args.pkl, args.output, allow_pickle=args.allow_pickle)
        say(f"wrote {args.output}: {frames} frame(s) of LivePortrait motion (use with --engine keypoint)")
    elif args.command == "motion" and args.motion_command == "render":
        frames = api.render_motion(args.template, args.output, size=args.size, progress=not args.quiet)
        say(f"wrote {args.output}: {frames} frame(s)")
    elif args.command == "weights" and args.weights_command == "download":
        from enliven import weights

        say(f"downloaded {args.model} to {weights.download(args.model, args.dir)}")
    elif args.command == "weights" and args.weights_command == "convert":
        from pathlib import Path

        from enliven.engines.landmark_diffusion.checkpoints import BASE, FYE

        if any((Path(args.dir) / sub / FYE).is_dir() and (Path(args.dir) / sub / BASE).is_dir()
               for sub in ("", "pretrained_models")):
            from enliven.engines.landmark_diffusion import convert_to_safetensors
        elif any((Path(args.dir) / sub / "hyportrait").is_dir() for sub in ("", "pretrained_weights")):
            from enliven.engines.implicit_diffusion import convert_to_safetensors
        else:
            from enliven.engines.keypoint import convert_to_safetensors

        for path in convert_to_safetensors(args.dir):
            say(f"wrote {path}")
    elif args.command == "weights" and args.weights_command == "export-onnx":
        from enliven.engines.keypoint import export_onnx, load_config, load_official
        from enliven.engines.keypoint.checkpoints import checkpoint_root

        config = load_config(args.dir)
        target = args.output or checkpoint_root(args.dir) / "onnx"
        for path in export_onnx(load_official(args.dir, config=config), target, config):
            say(f"wrote {path}")
    elif args.command == "bench":
        from enliven.evaluation.report import write_report
        from enliven.evaluation.runner import run_cross, run_self

        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        options = dict(identity_every=args.identity_every, progress=not args.quiet)
        if args.weights:
            options["weights"] = args.weights
        if args.bench_command == "self":
            run = run_self(args.videos, engines, **options)
        else:
            run = run_cross(args.sources, args.driving, engines, **options)
        for path in write_report(run, args.output):
            say(f"wrote {path}")
    elif args.command == "serve":
        from enliven.serve import serve

        serve(args.host, args.port, args.data_dir, workers=args.workers, queue_size=args.queue_size,
              keep_hours=args.keep_hours, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
              max_pixels=args.max_upload_pixels, ray_address=args.ray)
    elif args.command == "batch":
        from enliven import batch

        jobs = batch.jobs_from(args.manifest, args.sources, args.driving, batch.job_defaults(args.engine, args.options))
        settings = batch.BatchSettings(
            address=args.address, num_cpus=args.num_cpus, retries=args.retries, max_workers=args.max_workers,
            job_timeout=args.job_timeout * 3600 or None, gpus_per_worker=args.gpus_per_worker,
            max_pixels=args.max_pixels)
        result = batch.run_batch(jobs, args.output, settings, progress=not args.quiet, report=args.report)
        say(result.summary())
        return 1 if result.failed else 0
    elif args.command == "app":
        from enliven.app import launch

        launch(args.host, args.port)
    elif args.command == "train":
        from enliven.engines.audio_diffusion import training

        if args.print_config:
            from enliven.engines.audio_diffusion.training.config import default_text

            sys.stdout.write(default_text())
        elif not args.config:
            raise EnlivenError("give the training CONFIG (start from `enliven train audio-diffusion --print-config`)")
        else:
            training.main(args.config, resume=args.resume, preprocess_only=args.preprocess_only, say=say)
    elif args.command == "presets":
        from enliven.motion.presets import PRESETS

        for p in PRESETS.values():
            print(f"preset:{p.name:<8} {p.description}")
    elif args.command == "engines":
        from enliven import engines

        for name, descriptor in engines.descriptors().items():
            print(f"{name:<18} {descriptor.system}; {', '.join(descriptor.can())}")
            print(f"{'':<18} needs {descriptor.needs}")
    return 0


class _HeldWarnings(logging.Handler):
    """The library's warnings of one run (damaged packets skipped, ...), held until it ends: printed after a
    run that worked, dropped after one that failed, whose one error line says what matters."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _warnings_held_until_done() -> Iterator[None]:
    logger = logging.getLogger("enliven")
    held, propagate = _HeldWarnings(), logger.propagate
    logger.addHandler(held)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(held)
        logger.propagate = propagate
    for message in held.messages:  # reached only when the run returned
        print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command: exit 0 done, 2 bad input (one line), 130 Ctrl-C, 143 SIGTERM; unfinished files are removed."""
    try:
        with _stop_cleanly_on_signals(), _warnings_held_until_done():
            return run(argv)
    except EnlivenError as exc:
        print(f"enliven: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("enliven: interrupted; unfinished output removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("enliven: terminated; unfinished output removed", file=sys.stderr)
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
