"""The Gradio page of ``enliven app``: Animate (every ``animate`` input and option) and Edit (live sliders on a still).

The page only gathers inputs and shows results: animation, still edits and motion drawings are the calls the CLI
makes (``api.animate``, ``api.animate_text``, ``api.prepare_animation`` + ``Animation.still``,
``api.extract_motion`` + ``api.render_motion``). Library errors are shown as their one line.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool: no calls home

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from enliven import api, engines, weights  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402
from enliven.io.images import IMAGE_SUFFIXES, read_image, write_image  # noqa: E402
from enliven.motion import edits  # noqa: E402
from enliven.motion.align import Controls  # noqa: E402
from enliven.motion.audio import AUDIO_SUFFIXES  # noqa: E402
from enliven.motion.presets import PRESETS  # noqa: E402

DRIVE_FILE, DRIVE_PRESET, DRIVE_TEXT = "uploaded file", "preset", "text to speak"
# What each engine's weights are called in ``weights``; engines not named here need none.
SLIDERS_AT_START = {"eye_left": 0.3, "eye_right": 0.3, "lip": 0.0}  # the Animate tab's eye and lip sliders
RATIO_STEP = 0.005  # eye and lip sliders closer than this to the picture's own ratio leave that feature alone
# No web fonts: the page must look right offline.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def engine_status() -> dict[str, str | None]:
    """Each engine and, if it cannot run here, what it needs (None: ready)."""
    return {name: engines.readiness(name) for name in engines.available()}


def _engine_table(status: dict[str, str | None]) -> str:
    rows = [f"- **{name}**: " + ("ready" if missing is None else f"not ready here; needs {missing}")
            for name, missing in status.items()]
    return "\n".join(rows)


def _controls(eye_left, eye_right, lip, yaw, pitch, roll, smile, brows, pout, wink, gaze_x, gaze_y,
              rest: dict) -> Controls:
    """Slider values as ``Controls``. Eye and lip sliders count only once moved off ``rest`` (the picture's own
    ratios, or the sliders' start), so an untouched slider never re-shapes a feature; eyes in picture order."""

    def moved(value: float, key: str) -> bool:
        return abs(value - rest[key]) > RATIO_STEP

    eyes = (eye_left, eye_right) if moved(eye_left, "eye_left") or moved(eye_right, "eye_right") else None
    return Controls(eyes_open=eyes, lip_open=lip if moved(lip, "lip") else None, yaw=yaw, pitch=pitch, roll=roll,
                    smile=smile, brows=brows, pout=pout, wink=wink, gaze=(gaze_x, gaze_y))


@dataclass
class StillEdit:
    """One picture prepared for live edits (faces found and the engine prepared once)."""

    animation: api.Animation
    path: Path  # the picture on disk, for turning the edit into a clip
    rest: dict = field(default_factory=dict)  # its own open ratios, in picture order

    def render(self, controls: Controls) -> np.ndarray:
        return self.animation.still(controls)


def prepare_still(image: np.ndarray, folder: Path) -> StillEdit:
    path = folder / f"still-{time.time_ns()}.png"
    write_image(path, image)
    animation = api.prepare_animation(image, "preset:blink", "the picture", progress=False)
    ratios = edits.expression_ratios(animation.faces[0].shape)
    # ``expression_ratios`` names eyes as the subject's; seen in the picture, the subject's right eye is on the left.
    rest = {"eye_left": ratios["eye_right"], "eye_right": ratios["eye_left"], "lip": ratios["lip"]}
    return StillEdit(animation, path, rest)


def _options(engine, relative, multiplier, smooth, normalize_lip, fps, face_index, all_faces, driver_face, reference,
             follow_camera, crop_scale, audio, crf, mouth, wrinkles, controls: Controls) -> dict:
    # The mouth's inside and the wrinkles are the mesh engine's own options: given to the engines that take them.
    takes = engines.describe(engine).option
    mesh = {k: v for k, v in (("mouth", mouth), ("wrinkles", float(wrinkles))) if takes(k) is not None}
    return dict(
        engine=engine, relative=relative, multiplier=multiplier, smooth=smooth, normalize_lip=normalize_lip,
        fps=fps or None, face_index=int(face_index), all_faces=all_faces, driver_face=_int_or_text(driver_face),
        reference=_int_or_text(reference), follow_camera=follow_camera, crop_scale=crop_scale, audio=audio,
        crf=int(crf), controls=controls, engine_options=mesh, progress=False,
    )


def _int_or_text(value: str):
    value = (value or "").strip()
    return int(value) if value.isdigit() else value


def _path_of(upload) -> Path | None:
    if upload is None:
        return None
    return Path(upload if isinstance(upload, str) else upload.name)


def build_page(work_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The page; results go under ``work_dir`` (default: a new temporary folder)."""
    work = Path(work_dir or tempfile.mkdtemp(prefix="enliven-app-"))
    work.mkdir(parents=True, exist_ok=True)
    status = engine_status()
    choices = [(name if missing is None else f"{name} (needs weights or extras: see below)", name)
               for name, missing in status.items()]

    with gr.Blocks(title="enliven") as page:
        gr.Markdown("# enliven\nBring a still portrait to life: one picture plus a motion becomes a video.")
        with gr.Tab("Animate", id="animate-tab"):
            with gr.Row():
                with gr.Column():
                    source = gr.File(label="Source: portrait picture or video (empty: the bundled portrait)",
                                     file_types=sorted(IMAGE_SUFFIXES | api.VIDEO_SUFFIXES), elem_id="source")
                    drive_kind = gr.Radio([DRIVE_FILE, DRIVE_PRESET, DRIVE_TEXT], value=DRIVE_PRESET,
                                          label="Motion from", elem_id="drive-kind")
                    driving_types = IMAGE_SUFFIXES | api.VIDEO_SUFFIXES | AUDIO_SUFFIXES | {".npz"}
                    driving = gr.File(label="Driving video, picture, motion template (.npz) or audio file",
                                      file_types=sorted(driving_types),
                                      elem_id="driving")
                    preset = gr.Dropdown([(f"{p.name}: {p.description}", p.name) for p in PRESETS.values()],
                                         value="demo", label="Preset", elem_id="preset")
                    with gr.Row():
                        text = gr.Textbox(label="Text to speak (espeak-ng)", elem_id="text")
                        voice = gr.Textbox(value="en", label="Voice", max_lines=1, scale=0, min_width=80)
                    engine = gr.Dropdown(choices, value="mesh", label="Engine", elem_id="engine")
                    gr.Markdown(_engine_table(status), elem_id="engine-status")
                    with gr.Accordion("Options", open=False):
                        relative = gr.Checkbox(True, label="Relative: apply the driver's change (off: copy its "
                                                            "expression and pose)")
                        multiplier = gr.Slider(0, 2, 1, step=0.05, label="Motion multiplier")
                        smooth = gr.Checkbox(True, label="Smooth measured motion")
                        normalize_lip = gr.Checkbox(False, label="Start from a closed mouth")
                        fps = gr.Number(0, label="Output fps (0: the driving's)", minimum=0, maximum=240)
                        face_index = gr.Number(0, label="Face index (0 = largest)", precision=0, minimum=0)
                        all_faces = gr.Checkbox(False, label="Animate every face")
                        driver_face = gr.Textbox("auto", label="Driver face: auto, largest or N")
                        reference = gr.Textbox("neutral", label="Reference frame: neutral, first or N")
                        follow_camera = gr.Checkbox(False, label="Follow the driver's camera in full")
                        crop_scale = gr.Slider(1.5, 4, 2.3, step=0.05, label="Crop scale")
                        audio = gr.Checkbox(True, label="Copy the driving audio")
                        crf = gr.Slider(0, 51, 18, step=1, label="H.264 quality (crf, lower is better)")
                        mouth = gr.Dropdown(["auto", "driver", "synth", "source"], value="auto", elem_id="mouth",
                                            label="Mesh engine, inside of the mouth: auto (the driver's from a "
                                                  "video or picture, else drawn teeth), driver, synth (drawn), "
                                                  "source (dark)")
                        wrinkles = gr.Slider(0, 3, 0, step=0.1, label="Mesh engine: the driver's wrinkles (0 off)",
                                             elem_id="wrinkles")
                    with gr.Accordion("Manual controls (on top of the motion; eye and lip sliders act once "
                                      "moved off their start)", open=False):
                        manual = _control_sliders(prefix="anim-")
                    draw = gr.Checkbox(False, label="Also draw the motion's landmarks (motion render)")
                    go = gr.Button("Animate", variant="primary", elem_id="animate")
                with gr.Column():
                    result_video = gr.Video(label="Result", elem_id="result", autoplay=True, loop=True,
                                            interactive=False)
                    result_still = gr.Image(label="Result (a driving picture gives a still)", visible=False,
                                            elem_id="result-still", interactive=False)
                    drawing = gr.Video(label="The motion's landmarks", visible=False, elem_id="drawing",
                                       interactive=False)
                    summary = gr.Markdown(elem_id="summary")

            driving.upload(lambda _: DRIVE_FILE, driving, drive_kind)
            text.input(lambda _: DRIVE_TEXT, text, drive_kind)
            preset.input(lambda _: DRIVE_PRESET, preset, drive_kind)

            def animate(source_file, kind, driving_file, preset_name, words, voice_name, engine_name, *rest,
                        progress=gr.Progress()):
                *option_values, want_drawing = rest
                controls = _controls(*option_values[-12:], rest=SLIDERS_AT_START)
                options = _options(engine_name, *option_values[:-12], controls=controls)
                try:
                    if engines.weights_name(engine_name):  # missing weights: the library's line now, not after
                        weights.resolve(engines.weights_name(engine_name))  # the faces are found (seconds on a CPU)
                    return _animate(work, _path_of(source_file), kind, _path_of(driving_file), preset_name, words,
                                    voice_name, options, want_drawing, progress)
                except EnlivenError as exc:
                    raise gr.Error(str(exc), print_exception=False) from None

            go.click(
                animate,
                [source, drive_kind, driving, preset, text, voice, engine, relative, multiplier, smooth,
                 normalize_lip, fps, face_index, all_faces, driver_face, reference, follow_camera, crop_scale, audio,
                 crf, mouth, wrinkles, *manual, draw],
                [result_video, result_still, drawing, summary],
                concurrency_limit=1,  # one render at a time: the machine's cores are the limit
            )

        with gr.Tab("Edit", id="edit-tab"):
            still_state = gr.State()
            with gr.Row():
                with gr.Column():
                    picture = gr.Image(value=str(api.bundled_portrait()), type="numpy", label="Picture",
                                       sources=["upload", "clipboard"], elem_id="picture")
                    sliders = _control_sliders(prefix="")
                with gr.Column():
                    edited = gr.Image(label="Edited (updates as a slider moves)", type="numpy", interactive=False,
                                      elem_id="edited", format="jpeg")
                    timing = gr.Markdown(elem_id="edit-timing")
                    clip_preset = gr.Dropdown([p.name for p in PRESETS.values()], value="blink",
                                              label="Motion for the clip")
                    make_clip = gr.Button("Make a clip of this edit", elem_id="make-clip")
                    clip = gr.Video(label="Clip", elem_id="clip", interactive=False)

            def load_picture(image):
                if image is None:
                    return None, None, *[gr.update()] * 3, ""
                try:
                    still = prepare_still(image, work)
                except EnlivenError as exc:
                    raise gr.Error(str(exc), print_exception=False) from None
                rest = still.rest
                return (still, still.render(Controls()), gr.update(value=round(rest["eye_left"], 3)),
                        gr.update(value=round(rest["eye_right"], 3)), gr.update(value=round(rest["lip"], 3)), "")

            def update(still: StillEdit | None, *values):
                if still is None:
                    return gr.update(), ""
                started = time.perf_counter()
                try:
                    image = still.render(_controls(*values, rest=still.rest))
                except EnlivenError as exc:
                    raise gr.Error(str(exc), print_exception=False) from None
                return image, f"rendered in {1000 * (time.perf_counter() - started):.0f} ms"

            def clip_of(still: StillEdit | None, motion, *values, progress=gr.Progress()):
                if still is None:
                    raise gr.Error("load a picture first", print_exception=False)
                output = work / f"edit-{time.time_ns()}.mp4"
                try:
                    api.animate(still.path, api.PRESET_PREFIX + motion, output, progress=False,
                                controls=_controls(*values, rest=still.rest), on_frame=_reporter(progress))
                except EnlivenError as exc:
                    raise gr.Error(str(exc), print_exception=False) from None
                return str(output)

            loaded = [still_state, edited, sliders[0], sliders[1], sliders[2], timing]
            picture.change(load_picture, picture, loaded)
            page.load(load_picture, picture, loaded)
            for slider in sliders:
                slider.change(update, [still_state, *sliders], [edited, timing], show_progress="hidden",
                              trigger_mode="always_last")
            make_clip.click(clip_of, [still_state, clip_preset, *sliders], clip, concurrency_limit=1)
    return page


def _control_sliders(prefix: str) -> list:
    """Sliders for every ``Controls`` field, in ``_controls``' order."""
    ids = ["eye-left", "eye-right", "lip", "yaw", "pitch", "roll", "smile", "brows", "pout", "wink", "gaze-x",
           "gaze-y"]
    specs = [("Eye open (picture's left)", 0, 0.8, 0.3), ("Eye open (picture's right)", 0, 0.8, 0.3),
             ("Lip open", 0, 0.8, 0.0), ("Yaw (°)", -30, 30, 0), ("Pitch (°)", -20, 20, 0), ("Roll (°)", -30, 30, 0),
             ("Smile (negative: frown)", -1.5, 1.5, 0), ("Brows (negative: lowered)", -1.5, 1.5, 0),
             ("Pout", 0, 1.5, 0), ("Wink (picture's left eye)", 0, 1, 0), ("Gaze: right (negative: left)", -1, 1, 0),
             ("Gaze: down (negative: up)", -1, 1, 0)]
    return [gr.Slider(low, high, value, step=0.01, label=label, elem_id=prefix + name)
            for name, (label, low, high, value) in zip(ids, specs)]


def _reporter(progress):
    def on_frame(done: int, total: int | None) -> None:
        if total:
            progress((done, total), desc="animating", unit="frames")

    return on_frame


def _animate(work: Path, source: Path | None, kind: str, driving: Path | None, preset_name: str, words: str,
             voice: str, options: dict, want_drawing: bool, progress) -> tuple:
    source = source or api.bundled_portrait()
    progress(0, desc="finding the face")
    options["on_frame"] = _reporter(progress)
    if kind == DRIVE_FILE:
        if driving is None:
            raise EnlivenError("upload a driving file, or choose a preset or text")
        motion = driving
    elif kind == DRIVE_PRESET:
        motion = api.PRESET_PREFIX + preset_name
    else:
        if not (words or "").strip():
            raise EnlivenError("type the text to speak")
        motion = None
    still = motion is not None and driving is not None and driving.suffix.lower() in IMAGE_SUFFIXES
    output = work / f"result-{time.time_ns()}{'.png' if still else '.mp4'}"
    if motion is None:
        result = api.animate_text(source, words, output, voice=voice or "en", **options)
    else:
        result = api.animate(source, motion, output, **options)
    drawn = _draw(work, motion) if want_drawing else None
    return (
        gr.update(value=None if still else str(output), visible=not still),
        gr.update(value=read_image(output) if still else None, visible=still),
        gr.update(value=drawn, visible=drawn is not None),
        result.summary().replace(str(output), output.name),
    )


def _draw(work: Path, motion) -> str | None:
    """The motion as landmark drawings (``enliven motion render``); a video's motion is extracted first."""
    if motion is None:
        return None
    text = str(motion)
    if not text.startswith(api.PRESET_PREFIX):
        suffix = Path(text).suffix.lower()
        if suffix in api.VIDEO_SUFFIXES:
            template = work / f"motion-{time.time_ns()}.npz"
            api.extract_motion(motion, template, progress=False)
            text = str(template)
        elif suffix != ".npz":
            return None  # a picture or audio: nothing to draw over time
    output = work / f"landmarks-{time.time_ns()}.mp4"
    api.render_motion(text, output, size=256, progress=False)
    return str(output)

