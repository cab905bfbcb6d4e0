"""Fuzz every input the ``enliven`` command and API take: damaged, odd and hostile files, options and paths.

Each test draws cases of one class with Hypothesis (seeded: the same cases every run unless ENLIVEN_FUZZ_SEED
changes), runs them in a worker process (``fuzz_harness``) and requires each to end, within a time limit, with a
complete output or one ``enliven: error:`` line and exit 2: no traceback, no hang, nothing left behind, memory
bounded. A case a user would call ordinary (an intact file in a role it can play, option values within their
documented ranges, a path with spaces, non-ASCII characters or an upper-case suffix) must end with the output:
refusing it politely is a failure too. See tests/fuzz/README.md for the longer local run and for fuzzing another
checkout.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import fuzz_media as media
from fuzz_harness import Case, Fuzzer

FUZZ_SEED = int(os.environ.get("ENLIVEN_FUZZ_SEED", "20261130"))
SCALE = float(os.environ.get("ENLIVEN_FUZZ_SCALE", "1"))  # 10 for a longer local run
SURVEY = os.environ.get("ENLIVEN_FUZZ_SURVEY") == "1"  # run every case and count failures instead of stopping


def fuzz_settings(cases: int):
    """Seeded, no example database (runs are reproducible from the seed alone), our own time limit instead of
    Hypothesis's deadline; no shrinking in a survey (each failure is counted as drawn)."""
    phases = (Phase.explicit, Phase.generate) if SURVEY or os.environ.get("CI") else tuple(Phase)
    return settings(
        max_examples=max(1, int(cases * SCALE)), deadline=None, database=None, phases=phases, derandomize=False,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="session")
def fuzz_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="session")
def seeds(fuzz_root) -> media.Seeds:
    return media.build_seeds(fuzz_root / "seeds")


@pytest.fixture(scope="session")
def fuzzer(fuzz_root, seeds):
    runner = Fuzzer(fuzz_root / "worker", seeds["source.png"], os.environ.get("ENLIVEN_FUZZ_SRC"))
    yield runner
    runner.stop()


class Cases:
    """Makes a fresh folder per case with the plain inputs a command line needs beside the fuzzed one."""

    def __init__(self, root: Path, seeds: media.Seeds):
        self.root, self.seeds, self.count = root, seeds, 0

    def folder(self, with_source: bool = True, with_template: bool = True) -> Path:
        self.count += 1
        folder = self.root / f"case{self.count:05d}"
        folder.mkdir(parents=True)
        if with_source:
            shutil.copy(self.seeds["source.png"], folder / "source.png")
        if with_template:
            shutil.copy(self.seeds.of_format("npz"), folder / "motion.npz")
        return folder


@pytest.fixture(scope="session")
def cases(fuzz_root, seeds) -> Cases:
    return Cases(fuzz_root / "cases", seeds)


def check(fuzzer: Fuzzer, case: Case) -> None:
    outcome = fuzzer.run(case)
    if not outcome.problems:
        _remove(case.folder)
    elif not SURVEY:
        pytest.fail(outcome.describe() + f"\n  folder kept: {case.folder}", pytrace=False)


def _remove(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:  # a read-only folder of a path case
        if path.is_dir() and not path.is_symlink():
            path.chmod(stat.S_IRWXU)
    shutil.rmtree(folder, ignore_errors=True)


# --- what a command does with its fuzzed input ----------------------------------------------------------------

ROLES = {
    "image": ("source", "driving-image"),
    "video": ("driving", "extract", "source-video"),
    "audio": ("audio", "driving"),
    "template": ("driving", "render"),
}


def group_of(fmt: str) -> str:
    for group, formats in (("image", media.IMAGE_FORMATS), ("video", media.VIDEO_FORMATS),
                           ("audio", media.AUDIO_FORMATS), ("template", media.TEMPLATE_FORMATS)):
        if fmt in formats:
            return group
    return "other"


def command(role: str, name: str, output: str | None = None) -> tuple[list[str], str]:
    """The command line that gives ``name`` the ``role``, and its output file's name."""
    still = Path(name).suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
    if role == "driving-image" and not still:  # an animated GIF drives as a video does
        role = "driving"
    if role == "source":
        out = output or "out.mp4"
        return ["-q", "animate", name, "motion.npz", "-o", out], out
    if role == "driving-image" or (role == "driving" and still):
        out = output or "out.png"
        return ["-q", "animate", "source.png", name, "-o", out], out
    if role == "driving":
        out = output or "out.mp4"
        return ["-q", "animate", "source.png", name, "-o", out], out
    if role == "source-video":
        out = output or "out.mp4"
        return ["-q", "animate", name, "motion.npz", "-o", out], out
    if role == "extract":
        out = output or "out.npz"
        return ["-q", "motion", "extract", name, "-o", out], out
    if role == "audio":
        out = output or "out.mp4"
        return ["-q", "animate", "source.png", "--audio", name, "-o", out], out
    if role == "render":
        out = output or "out.mp4"
        return ["-q", "motion", "render", name, "-o", out, "--size", "64"], out
    if role == "import-pkl":
        out = output or "out.npz"
        return ["-q", "motion", "import-pkl", name, "-o", out], out
    raise ValueError(role)


ALL_ROLES = ("source", "driving-image", "driving", "source-video", "extract", "audio", "render", "import-pkl")

damages = st.one_of(
    st.just(media.Damage("intact")),
    st.builds(media.Damage, st.just("truncate"), where=st.floats(0, 1)),
    st.builds(media.Damage, st.just("flip"),
              bits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1,
                            max_size=32).map(tuple)),
    st.builds(media.Damage, st.just("burst"), where=st.floats(0, 1), length=st.integers(1, 4096),
              fill=st.integers(0, 255)),
    st.builds(media.Damage, st.just("head"),
              bits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1,
                            max_size=8).map(tuple)),
)


# --- the classes ----------------------------------------------------------------------------------------------


@fuzz_settings(230)
@seed(FUZZ_SEED)
@given(fmt=st.sampled_from(media.ALL_FORMATS), damage=damages, pick=st.integers(0, 2), upper=st.booleans())
def test_damaged_files(fuzzer, cases, seeds, fmt, damage, pick, upper):
    """Truncated, bit-flipped and overwritten files of every format, in every role they can play, named with a
    lower- or upper-case suffix (cameras write IMG_0001.JPG and MVI_0001.MP4). An intact one must work."""
    group = group_of(fmt)
    role = ROLES[group][pick % len(ROLES[group])]
    folder = cases.folder()
    name = f"in.{fmt.upper() if upper else fmt}"
    media.damaged_copy(seeds.of_format(fmt), folder / name, damage)
    argv, out = command(role, name)
    check(fuzzer, Case(f"damaged-{group}", f"{name} {damage} as {role}", folder, folder / out, argv,
                       expect="done" if damage.kind == "intact" else None))


ODD_FILES = ("zero-length", "text", "random-bytes", "wrong-extension", "directory", "missing", "fifo",
             "symlink-loop", "dev-null", "html-page")
SUFFIXES = tuple(f".{fmt}" for fmt in media.ALL_FORMATS) + (".jpeg", ".MP4", ".PNG", ".txt", "", ".pkl", ".m4v")


@fuzz_settings(50)
@seed(FUZZ_SEED)
@given(variant=st.sampled_from(ODD_FILES), role=st.sampled_from(ALL_ROLES), suffix=st.sampled_from(SUFFIXES),
       other=st.sampled_from(media.ALL_FORMATS), data=st.binary(min_size=1, max_size=2048))
def test_odd_files(fuzzer, cases, seeds, variant, role, suffix, other, data):
    """Files that are not what their name says, or not files at all: each must be refused in one line."""
    folder = cases.folder()
    name = "in" + suffix
    path = folder / name
    if variant == "zero-length":
        path.write_bytes(b"")
    elif variant == "text":
        path.write_text("this is not a picture\n" * 5)
    elif variant == "html-page":  # what a failed download saves
        path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    elif variant == "random-bytes":
        path.write_bytes(data)
    elif variant == "wrong-extension":
        shutil.copy(seeds.of_format(other), path)
    elif variant == "directory":
        path.mkdir()
    elif variant == "fifo":  # opening it for reading would wait for a writer forever
        os.mkfifo(path)
    elif variant == "symlink-loop":
        path.symlink_to(path.name)
    elif variant == "dev-null":
        name = "/dev/null"
    argv, out = command(role, name)
    expect = None if variant == "wrong-extension" else "refused"
    check(fuzzer, Case("odd-file", f"{variant} named {name!r} (else {other}) as {role}", folder, folder / out,
                       argv, expect=expect))


MUST_WORK_PICTURES = {"png16-grey", "png16-rgb", "cmyk-jpeg", "grey", "palette", "rgba", "la", "exif-rotated",
                      "animated-gif", "animated-webp", "odd-size", "progressive-jpeg", "interlaced-png", "float-tiff"}


@fuzz_settings(50)
@seed(FUZZ_SEED)
@given(variant=st.sampled_from(media.PICTURE_VARIANTS), role=st.sampled_from(("source", "driving-image")),
       orientation=st.integers(1, 8))
def test_odd_pictures(fuzzer, cases, variant, role, orientation):
    """Pictures in every pixel layout users' files come in (a face in each must work), and headers that claim
    impossible sizes (refused before anything is decoded)."""
    folder = cases.folder()
    path = media.odd_picture(variant, folder / "in", orientation)
    argv, out = command(role, path.name)
    expect = "done" if variant in MUST_WORK_PICTURES else "refused" if variant.startswith("huge-claim") else None
    check(fuzzer, Case("odd-picture", f"{variant} (orientation {orientation}) as {role}", folder, folder / out,
                       argv, expect=expect))


MUST_WORK_STREAMS = {"eight-channel-wav", "eight-channel-flac", "mono-8khz-wav", "long-silence-wav", "one-frame",
                     "odd-size-video", "variable-rate", "rate-1", "rate-1000", "rate-1-per-1001"}


@fuzz_settings(50)
@seed(FUZZ_SEED)
@given(variant=st.sampled_from(media.STREAM_VARIANTS), pick=st.integers(0, 2))
def test_odd_streams(fuzzer, cases, variant, pick):
    """Media with unusual streams: no picture, no samples, eight channels, silly and variable frame rates."""
    folder = cases.folder()
    path = media.odd_stream(variant, folder / "in")
    group = "audio" if path.suffix == ".wav" or path.suffix == ".flac" else "video"
    role = ROLES[group][pick % len(ROLES[group])]
    argv, out = command(role, path.name)
    must_work = variant in MUST_WORK_STREAMS and not (role == "source-video" and variant == "one-frame")
    check(fuzzer, Case("odd-stream", f"{variant} as {role}", folder, folder / out, argv,
                       expect="done" if must_work else None))


MUST_REFUSE_TEMPLATES = {"object-array", "not-a-zip", "nested-zip", "huge-claim", "wrong-format-name",
                         "unknown-schema", "scalar-shape", "string-array", "wrong-dtype"}


@fuzz_settings(50)
@seed(FUZZ_SEED)
@given(variant=st.sampled_from(media.TEMPLATE_VARIANTS), where=st.floats(0, 1),
       role=st.sampled_from(("driving", "render", "source-video")))
def test_odd_templates(fuzzer, cases, seeds, variant, where, role):
    """Motion templates with NaN, inf, wrong shapes and types, huge claimed arrays, object arrays (refused
    without being unpickled: the sentinel inside would leave a mark)."""
    folder = cases.folder()
    media.odd_template(variant, seeds.of_format("npz"), folder / "in.npz", where)
    if role == "source-video":
        shutil.copy(seeds.of_format("mp4"), folder / "clip.mp4")
        argv, out = ["-q", "animate", "clip.mp4", "in.npz", "-o", "out.mp4"], "out.mp4"
    else:
        argv, out = command(role, "in.npz")
    expect = "refused" if variant in MUST_REFUSE_TEMPLATES else "done" if variant in ("extra-key", "one-frame") \
        else None
    check(fuzzer, Case("template", f"{variant} at {where:.2f} as {role}", folder, folder / out, argv, expect=expect))


NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "-0", "1e308", "1e-300", "3", "0.5", "1000", "abc", "",
                     "1,2", "0x10", "  2 ", "٣", "1_000"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-10**12, 10**12).map(str),
)
PAIRS = st.one_of(
    st.tuples(NUMBERS, NUMBERS).map(",".join),
    st.sampled_from(["", ",", "1,2,3", "nan,nan", "inf,0", "0.3", "a,b", ",,"]),
)
VALUE_OPTIONS = ("--fps", "--multiplier", "--crop-scale", "--crf", "--face-index", "--lip-open", "--yaw",
                 "--pitch", "--roll", "--smile", "--brows", "--pout", "--wink", "--max-pixels", "--driver-face",
                 "--reference", "--engine")
FLAGS = ("--absolute", "--no-smooth", "--all-faces", "--follow-camera", "--normalize-lip", "--no-audio", "--json",
         "--allow-pickle", "--pose-friendly", "--no-stitching")
WORDS = st.one_of(NUMBERS, st.sampled_from(["auto", "largest", "neutral", "first", "mesh", "keypoint", "nope",
                                            "-1", "99", "1e9"]))
BASES = ("template", "still", "render", "extract", "text", "audio", "clip")


def base_command(base: str, folder: Path, seeds, *, clip: str = "mp4", audio: str = "wav",
                 text: str = "Hello there.", voice: str | None = None) -> tuple[list[str], str]:
    """The command line (after the program name) and output name of one ordinary job of kind ``base``: animate a
    template, a driving picture (still), a driving clip, audio or text; extract or render motion. Inputs it names are
    copied into ``folder`` from the seeds (``clip``, ``audio``: their formats)."""
    if base == "template":
        return ["-q", "animate", "source.png", "motion.npz", "-o", "out.mp4"], "out.mp4"
    if base == "still":
        shutil.copy(seeds.of_format("jpg"), folder / "drive.jpg")
        return ["-q", "animate", "source.png", "drive.jpg", "-o", "out.png"], "out.png"
    if base == "render":
        return ["-q", "motion", "render", "motion.npz", "-o", "out.mp4"], "out.mp4"
    if base == "extract":
        shutil.copy(seeds.of_format(clip), folder / f"clip.{clip}")
        return ["-q", "motion", "extract", f"clip.{clip}", "-o", "out.npz"], "out.npz"
    if base == "text":
        return ["-q", "animate", "source.png", "--text", text, *(["--voice", voice] if voice is not None else []),
                "-o", "out.mp4"], "out.mp4"
    if base == "audio":
        shutil.copy(seeds.of_format(audio), folder / f"speech.{audio}")
        return ["-q", "animate", "source.png", "--audio", f"speech.{audio}", "-o", "out.mp4"], "out.mp4"
    if base == "clip":
        shutil.copy(seeds.of_format(clip), folder / f"clip.{clip}")
        return ["-q", "animate", "source.png", f"clip.{clip}", "-o", "out.mp4"], "out.mp4"
    raise ValueError(base)


# Values a user means: inside each option's range as --help and the README's "Values checked at the door" give
# it (not as the code checks it), spelled as people type them. A command of nothing else on intact inputs must be
# done. Only the mesh engine's and every engine's options: --no-stitching and --pose-friendly are the keypoint
# engine's, and the fuzz runs the default mesh engine.
ORDINARY_VALUES = {
    "--fps": ["1", "12", "24", "25", "29.97", "30", "60", "240"],
    "--multiplier": ["0", "0.5", "1", "1.5", "2", "10"],
    "--crop-scale": ["1.8", "2.3", "3", "4"],
    "--crf": ["0", "18", "23", "35", "51"],
    "--face-index": ["0"],  # the fuzz's source picture has one face
    "--lip-open": ["0", "0.2", "0.5", "0.8"],
    "--yaw": ["-45", "-20", "0", "12.5", "45"],
    "--pitch": ["-30", "-10", "8", "30"],
    "--roll": ["-45", "-15", "5", "45"],
    "--smile": ["-1", "0.5", "1", "3"],
    "--brows": ["-1", "0.4", "1"],
    "--pout": ["0", "0.5", "1"],
    "--wink": ["0", "0.5", "1"],
    "--max-pixels": ["1000000", "120000000", "250000000"],
    "--driver-face": ["auto", "largest", "0"],
    "--reference": ["neutral", "first", "0", "3"],
    "--engine": ["mesh"],
}
ORDINARY_PAIRS = {"--eyes-open": ["0.3,0.3", "0,0.8", "0.25,0.1"], "--gaze": ["0,0", "0.5,0", "-1,1", "0.2,-0.3"]}
ORDINARY_FLAGS = ("--absolute", "--no-smooth", "--all-faces", "--follow-camera", "--normalize-lip", "--no-audio",
                  "--json", "--allow-pickle")
ORDINARY_TEXTS = ("Hello there.", "Good morning! How are you today?", "Grüß Gott, schöne Grüße.",
                  "Ça va très bien, merci.", "¿Dónde está la estación?", "Zażółć gęślą jaźń.", "Привет, как дела?",
                  "It costs 12.50 € — or £11, 'roughly'.")
ORDINARY_VOICES = ("en", "de", "en+f3")
# Text speaks through espeak-ng; without it a --text run is refused in one line, as it should be. CI installs it
# (.ci/run) and then an ordinary text must be spoken.
SPEAKS = shutil.which("espeak-ng") is not None or bool(os.environ.get("CI"))


def _ordinary(options: dict) -> st.SearchStrategy:
    """A dictionary of up to four of ``options``' names, each with one of its ordinary values."""
    return st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: st.sampled_from(options[name]) for name in names}))


@fuzz_settings(70)
@seed(FUZZ_SEED)
@given(base=st.sampled_from(BASES),
       values=st.dictionaries(st.sampled_from(VALUE_OPTIONS), WORDS, max_size=4),
       pairs=st.dictionaries(st.sampled_from(("--eyes-open", "--gaze")), PAIRS, max_size=2),
       flags=st.sets(st.sampled_from(FLAGS), max_size=3),
       size=st.one_of(st.none(), NUMBERS),
       text=st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40),
       voice=st.sampled_from(["en", "de", "zz-nonexistent", "", "en+f3"]),
       ordinary=st.booleans(),
       ordinary_values=_ordinary(ORDINARY_VALUES), ordinary_pairs=_ordinary(ORDINARY_PAIRS),
       ordinary_flags=st.sets(st.sampled_from(ORDINARY_FLAGS), max_size=3),
       ordinary_size=st.one_of(st.none(), st.sampled_from(["64", "100", "256"])),
       ordinary_text=st.sampled_from(ORDINARY_TEXTS), ordinary_voice=st.sampled_from(ORDINARY_VOICES))
def test_option_values(fuzzer, cases, seeds, base, values, pairs, flags, size, text, voice, ordinary,
                       ordinary_values, ordinary_pairs, ordinary_flags, ordinary_size, ordinary_text, ordinary_voice):
    """Every option with absurd values: NaN, infinities, negative, huge, malformed numbers and words (done or
    refused in one line); or, in about half the cases, with ordinary values only (done)."""
    if ordinary:
        values, pairs, flags, size = ordinary_values, ordinary_pairs, ordinary_flags, ordinary_size
        text, voice = ordinary_text, ordinary_voice
    folder = cases.folder()
    argv, out = base_command(base, folder, seeds, text=text, voice=voice)
    if base == "render" and size is not None:
        argv += ["--size", size]
    animating = argv[1] == "animate"
    if animating:
        for option, value in {**values, **pairs}.items():
            argv += [f"{option}={value}"]  # --x=VALUE: a value starting with '-' is still a value
        argv += sorted(flags)
    elif "--max-pixels" in values:  # a global option: before the command
        argv = [argv[0], f"--max-pixels={values['--max-pixels']}", *argv[1:]]
    label = ("ordinary: " if ordinary else "") + " ".join(argv[1:])
    expect = "done" if ordinary and (base != "text" or SPEAKS) else None
    check(fuzzer, Case("option", label[:300], folder, folder / out, argv, expect=expect))


PATH_NAMES = ("with space", "naïve ünïcödé", "日本語の写真", "emoji 😀", "-dash-first", "many.dots.in.name",
              "x" * 200, "tab\tin", "quote's \"name\"", "percent%d %s")
OUTPUT_PLACES = ("plain", "folder", "same-as-source", "same-as-driving", "read-only-folder", "missing-folder",
                 "parent-is-file", "existing-output", "no-suffix", "wrong-suffix", "uppercase-suffix", "odd-name")


# The inputs' suffixes (source picture, driving picture, driving clip) as cameras, phones and people write them.
INPUT_SUFFIXES = {"lower": (".png", ".jpg", ".mp4"), "upper": (".PNG", ".JPG", ".MP4"),
                  "long": (".Png", ".JPEG", ".Mp4")}


@fuzz_settings(45)
@seed(FUZZ_SEED)
@given(name=st.sampled_from(PATH_NAMES), place=st.sampled_from(OUTPUT_PLACES),
       kind=st.sampled_from(("still", "video", "extract")), suffixes=st.sampled_from(sorted(INPUT_SUFFIXES)))
def test_paths(fuzzer, cases, seeds, name, place, kind, suffixes):
    """Input and output paths as users have them: spaces, non-ASCII, odd characters, upper-case suffixes (all
    must work); an output that is a folder, an input, in a read-only or missing folder, or already there (kept
    intact unless replaced whole)."""
    folder = cases.folder(with_source=False)
    picture, still, clip = INPUT_SUFFIXES[suffixes]
    source = f"{name}{picture}" if not name.startswith("-") else f"./{name}{picture}"
    shutil.copy(seeds["source.png"], folder / source)
    if kind == "still":
        driving = f"{name} drive{still}"
        shutil.copy(seeds.of_format("jpg"), folder / driving)
        default_out = f"{name} out.png"
    else:
        driving = f"{name} clip{clip}"
        shutil.copy(seeds.of_format("mp4"), folder / driving)
        default_out = f"{name} out.npz" if kind == "extract" else f"{name} out.mp4"
    suffix = Path(default_out).suffix
    # Every name here is one a user may have: an output in a place that can take it must be written.
    expect = "done" if place in ("plain", "existing-output", "uppercase-suffix", "odd-name") else None
    out = default_out
    if place == "folder":
        (folder / "a folder").mkdir()
        out, expect = "a folder", "refused"
    elif place == "same-as-source":
        out, expect = source, "refused"
    elif place == "same-as-driving":
        out, expect = driving, "refused"
    elif place == "read-only-folder":
        (folder / "locked").mkdir()
        out = f"locked/{default_out}"
        (folder / "locked").chmod(0o555)
        expect = "done" if os.geteuid() == 0 else "refused"  # root writes anyway
    elif place == "missing-folder":
        out, expect = f"not here/{default_out}", "refused"
    elif place == "parent-is-file":
        (folder / "a file").write_text("x")
        out, expect = f"a file/{default_out}", "refused"
    elif place == "existing-output":
        (folder / default_out).write_bytes(b"an older result the user wants kept unless replaced whole")
    elif place == "no-suffix":
        out, expect = Path(default_out).stem, "refused"
    elif place == "wrong-suffix":
        out, expect = Path(default_out).stem + ".txt", "refused"
    elif place == "uppercase-suffix":
        out = Path(default_out).stem + suffix.upper()
    elif place == "odd-name":
        out = f"résultat final ✓{suffix}"
    if kind == "extract":
        argv = ["-q", "motion", "extract", f"./{driving}" if driving.startswith("-") else driving, "-o", out]
    else:
        argv = ["-q", "animate", source, driving, "-o", out]
    check(fuzzer, Case("path", f"{name!r} ({suffixes} suffixes), output {place} ({kind})", folder, folder / out,
                       argv, expect=expect))


@fuzz_settings(30)
@seed(FUZZ_SEED)
@given(base=st.sampled_from(("template", "still", "extract", "render", "text", "audio")),
       limit=st.one_of(st.integers(0, 4096), st.integers(4096, 400_000)))
def test_full_disk(fuzzer, cases, seeds, base, limit):
    """A disk that fills up mid-write (RLIMIT_FSIZE: writes past the limit fail as on a full disk): one line,
    and no half-written file."""
    folder = cases.folder()
    argv, out = base_command(base, folder, seeds, clip="mkv", audio="flac")
    check(fuzzer, Case("full-disk", f"{base} with files limited to {limit} bytes", folder, folder / out, argv,
                       fsize=limit))


API_VALUES = st.one_of(st.floats(), st.integers(-10**6, 10**6), st.sampled_from(["auto", "largest", "first", "x", ""]))
API_OPTIONS = ("multiplier", "fps", "crop_scale", "crop_size", "crf", "face_index", "driver_face", "reference",
               "crop_vy", "engine")


@fuzz_settings(40)
@seed(FUZZ_SEED)
@given(call=st.sampled_from(("animate", "extract_motion", "render_motion", "import_liveportrait_template")),
       fmt=st.sampled_from(media.ALL_FORMATS), damage=damages,
       options=st.dictionaries(st.sampled_from(API_OPTIONS), API_VALUES, max_size=3),
       controls=st.dictionaries(st.sampled_from(("yaw", "smile", "lip_open", "wink", "gaze", "eyes_open")),
                                st.floats(), max_size=2))
def test_api(fuzzer, cases, seeds, call, fmt, damage, options, controls):
    """The Python API with damaged files and absurd option values: an EnlivenError with a one-line message, or
    a complete output; never another exception."""
    folder = cases.folder()
    name = f"in.{fmt}"
    media.damaged_copy(seeds.of_format(fmt), folder / name, damage)
    if call == "animate":
        still = group_of(fmt) == "image"
        out = "out.png" if still else "out.mp4"
        if "gaze" in controls:
            controls["gaze"] = (controls["gaze"], 0.0)
        if "eyes_open" in controls:
            controls["eyes_open"] = (controls["eyes_open"], controls["eyes_open"])
        kwargs = {**options, "controls": controls, "progress": False}
        request = {"call": "animate", "args": ["source.png", name, out], "kwargs": kwargs}
    elif call == "extract_motion":
        out = "out.npz"
        request = {"call": call, "args": [name, out], "kwargs": {"progress": False}}
    elif call == "render_motion":
        out = "out.mp4"
        size = options.get("crop_size", 64)
        request = {"call": call, "args": [name, out], "kwargs": {"size": size, "progress": False}}
    else:
        out = "out.npz"
        request = {"call": call, "args": [name, out], "kwargs": {}}
    # An intact file the call takes, with no option changed, must work (import_liveportrait_template takes a .pkl,
    # which no format here is).
    takes = call == "animate" or (call, group_of(fmt)) in (("extract_motion", "video"), ("render_motion", "template"))
    ordinary = damage.kind == "intact" and takes and not options and not controls
    check(fuzzer, Case("api", f"{call}({name} {damage}, {options}, controls={controls})", folder, folder / out,
                       api=request, expect="done" if ordinary else None))  # NaN, inf travel as JSON's NaN/Infinity
