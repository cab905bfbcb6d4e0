"""`enliven app` in a real browser: Playwright for Python driving Debian's chromium (installed by .ci/run; Playwright's
own browser download is not reachable here). Screenshots are written to $ENLIVEN_SCREENSHOTS (default: the test's
temporary folder) to be looked at."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("gradio", reason="the app extra is not installed (pip install -e '.[app]')")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from enliven import api, engines  # noqa: E402
from enliven.app.page import DRIVE_PRESET  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI=true but chromium is missing: .ci/run installs it with apt-get install chromium")
    pytest.skip("chromium is not installed here (apt-get install chromium; .ci/run does)", allow_module_level=True)

DRIVER_FRAMES, DRIVER_FPS = 10, 5.0
# A slider move must reach the picture (a liveness bound, not a speed target: speed is benchmarks/edit_speed.py's).
EDIT_UPDATE_TIMEOUT_MS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_process(tmp_path_factory):
    """`enliven app` on a free loopback port, started first: importing Gradio takes ~10 s here, and the inputs are
    made and the browser started meanwhile (``page`` waits for it)."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "enliven", "app", "--port", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def app_url(app_process) -> str:
    process, url, log = app_process
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the app did not come up in 90 s:\n" + log.read_text()
        time.sleep(0.3)


@pytest.fixture(scope="module")
def page(app_process, small_inputs, app_url):  # in this order: the inputs are made while the app starts
    with playwright.sync_playwright() as p:
        # --no-sandbox: chromium's sandbox refuses to run as root, which CI containers are.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app_url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("ENLIVEN_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A 256-pixel portrait and a 2 s driving clip of it at 5 fps: small, so the page renders them quickly."""
    folder = tmp_path_factory.mktemp("inputs")
    portrait = folder / "portrait.png"
    Image.open(api.bundled_portrait()).convert("RGB").resize((256, 256)).save(portrait)
    driver = folder / "driver.mp4"
    api.animate(portrait, "preset:mouth", driver, fps=DRIVER_FPS, progress=False)
    return portrait, driver


def _fetch(app_url: str, src: str) -> bytes:
    url = src if src.startswith("http") else app_url + src
    return httpx.get(url, timeout=30).content


def test_animate_uploads_plays_and_downloads(page, app_url, small_inputs, shots, tmp_path):
    portrait, driver = small_inputs
    page.locator("#source input[type=file]").set_input_files(portrait)
    page.locator("#driving input[type=file]").set_input_files(driver)
    playwright.expect(page.get_by_label("uploaded file")).to_be_checked()  # the upload chose it as the motion
    page.locator("#animate").click()
    video = page.locator("#result video")
    video.wait_for(timeout=90_000)
    # It plays: the browser decodes it and time advances.
    page.wait_for_function("() => { const v = document.querySelector('#result video');"
                           " return v && v.readyState >= 2 && v.currentTime > 0.2 && !v.paused; }", timeout=30_000)
    page.screenshot(path=str(shots / "animate.png"), full_page=True)
    data = _fetch(app_url, video.get_attribute("src"))
    (tmp_path / "result.mp4").write_bytes(data)
    with av.open(str(tmp_path / "result.mp4")) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (frames, float(stream.average_rate)) == (DRIVER_FRAMES, DRIVER_FPS)
        assert (stream.codec_context.width, stream.codec_context.height) == (256, 256)
    _assert_the_face_follows_the_driver(tmp_path / "result.mp4", driver)


# MediaPipe face mesh's own landmark numbers (its canonical model's, not enliven's): the middle of the upper and of
# the lower inner lip, and the mouth's corners.
UPPER_INNER_LIP, LOWER_INNER_LIP, MOUTH_CORNERS = 13, 14, (61, 291)


def _mouth_opening(analyzer, frame: np.ndarray) -> float:
    """The gap between the inner lips over the mouth's width, as MediaPipe's face mesh sees it in ``frame``."""
    faces = analyzer.detect(np.ascontiguousarray(frame))
    assert faces, "no face found in a frame"
    points = faces[0].landmarks[:, :2]
    gap = np.linalg.norm(points[LOWER_INNER_LIP] - points[UPPER_INNER_LIP])
    return float(gap / np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]]))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _assert_the_face_follows_the_driver(result: Path, driver: Path) -> None:
    """The face in the page's result opens and closes its mouth with the driver (preset:mouth): a video of the
    right length and size whose face stood still, or moved out of time with the driver, fails. Measured with
    MediaPipe's face mesh on each frame alone (no tracking to smooth it), the driver measured the same way."""
    from enliven.face.analyzer import FaceAnalyzer

    frames = _frames(result)
    with FaceAnalyzer(static=True) as analyzer:
        made = np.array([_mouth_opening(analyzer, frame) for frame in frames])
        driven = np.array([_mouth_opening(analyzer, frame) for frame in _frames(driver)])
        # MediaPipe's jitter: the same picture moved by 1-3 pixels has the same mouth, so what the measure does
        # then is noise (0.02-0.04 seen here, against a result's mouth that opens by about 0.15).
        still = [_mouth_opening(analyzer, np.roll(frames[0], shift, axis=1)) for shift in range(4)]
    moved, jitter = np.ptp(made), max(np.ptp(still), 0.01)
    following = np.corrcoef(made, driven)[0, 1]
    print(f"mouth opening: result {np.round(made, 3)}, driver {np.round(driven, 3)}, jitter {np.ptp(still):.3f}, "
          f"correlation {following:.2f}")
    assert moved > 3 * jitter, f"the result's mouth moves by {moved:.3f}: MediaPipe's jitter is {jitter:.3f}"
    # A good part of the driver's opening (about 0.6 of it here: relative motion starts from the portrait's own
    # mouth), frame for frame with the driver (one result frame per driving frame): it opens as the driver does.
    assert moved > 0.3 * np.ptp(driven), f"the result's mouth moves by {moved:.3f}, the driver's {np.ptp(driven):.3f}"
    assert following > 0.8, f"the result's mouth does not open with the driver's: correlation {following:.2f}"


def _picture(page, app_url, selector: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_fetch(app_url, page.locator(selector).get_attribute("src")))), float)


def test_edit_smile_slider_changes_the_picture_live(page, app_url, shots):
    page.get_by_role("tab", name="Edit").click()
    page.wait_for_function("() => document.querySelector('#edit-timing')?.innerText.includes('rendered')",
                           timeout=60_000)
    before_src = page.locator("#edited img").get_attribute("src")
    before = _picture(page, app_url, "#edited img")
    number = page.locator("#smile input[type=number]")
    started = time.perf_counter()
    number.fill("1.2")
    number.press("Enter")
    page.wait_for_function("(old) => document.querySelector('#edited img')?.getAttribute('src') !== old",
                           arg=before_src, timeout=EDIT_UPDATE_TIMEOUT_MS)
    seconds = time.perf_counter() - started
    after = _picture(page, app_url, "#edited img")
    page.screenshot(path=str(shots / "edit.png"), full_page=True)
    changed = np.abs(after - before).max(axis=2) > 20
    assert changed.sum() > 100  # the mouth moved
    rows, cols = np.nonzero(changed)
    # only on the face (the smile lifts the cheeks up to row ~96)
    assert rows.min() > 60 and rows.max() < 260 and cols.min() > 150 and cols.max() < 330
    print(f"smile slider to new picture in the browser: {seconds * 1000:.0f} ms")


def test_engines_without_weights_are_listed_with_their_needs_and_fail_with_one_line(page, app_process, shots):
    # An engine whose weights (or extra) are missing must still be offered, say what it needs, and when chosen end
    # in the library's one-line error on the page, not a crash or a traceback.
    from enliven.app.page import engine_status  # the app process sees the same: same environment

    missing = {name: needs for name, needs in engine_status().items() if needs}
    if not missing:
        pytest.skip("every engine has its weights here")
    page.get_by_role("tab", name="Animate").click()
    listed = page.locator("#engine-status").inner_text()
    for name in missing:
        assert f"{name}: not ready here; needs" in listed, listed
        assert f"enliven weights download {engines.weights_name(name)}" in listed, listed
    # A preset rather than the clip uploaded above: the engine is what fails, and a preset reaches it without the
    # driving clip's first pass (~5 s per engine here).
    page.get_by_label(DRIVE_PRESET, exact=True).check()
    toasts = page.locator(".toast-body")
    for name in missing:
        page.locator("#engine input").click()
        page.get_by_role("option", name=f"{name} (needs weights or extras: see below)").click()
        page.locator("#animate").click()
        toast = toasts.filter(has_text=f"no {engines.weights_name(name)} weights")
        toast.wait_for(timeout=30_000)
        text = toast.inner_text()
        assert f"enliven weights download {engines.weights_name(name)}" in text and "Traceback" not in text, text
        page.screenshot(path=str(shots / f"engine-{name}.png"), full_page=True)
        page.locator(".toast-close").first.click()  # so the next engine's toast is its own
    assert app_process[0].poll() is None  # the app is still up


def test_edit_make_a_clip_gives_a_playable_video(page, app_url, shots, tmp_path):
    page.get_by_role("tab", name="Edit").click()
    page.wait_for_function("() => document.querySelector('#edit-timing')?.innerText.includes('rendered')",
                           timeout=60_000)
    page.locator("#make-clip").click()
    video = page.locator("#clip video")
    video.wait_for(timeout=120_000)
    # Playable: the browser decodes it and, once played, its time advances.
    page.wait_for_function("() => { const v = document.querySelector('#clip video');"
                           " if (v && v.readyState >= 2 && v.paused) v.play();"
                           " return v && v.readyState >= 2 && v.currentTime > 0.2; }", timeout=30_000)
    page.screenshot(path=str(shots / "edit-clip.png"), full_page=True)
    (tmp_path / "clip.mp4").write_bytes(_fetch(app_url, video.get_attribute("src")))
    with av.open(str(tmp_path / "clip.mp4")) as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames > 10
