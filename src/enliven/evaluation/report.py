"""Benchmark reports: ``report.json`` (every number), ``report.md`` (paper-style tables) and PNG plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from enliven.evaluation.placement import NEAR, TARGETS
from enliven.evaluation.runner import OPTIONAL, Series
from enliven.io.files import atomic_output

# (key, label, better) in table order; "better" is "↑" or "↓".
COLUMNS = {
    "self": [
        ("l1", "L1", "↓"), ("psnr", "PSNR dB", "↑"), ("ssim", "SSIM", "↑"),
        ("face_l1", "L1 face", "↓"), ("face_psnr", "PSNR face", "↑"), ("face_ssim", "SSIM face", "↑"),
        ("mouth_ssim", "SSIM mouth", "↑"), ("mouth_brightness", "mouth light ×", "→1"),
        ("lmd", "LMD", "↓"), ("eye_error", "eye err", "↓"), ("lip_error", "lip err", "↓"),
        ("yaw_error", "yaw° err", "↓"), ("pitch_error", "pitch° err", "↓"), ("roll_error", "roll° err", "↓"),
        ("identity", "ID sim", "↑"), ("jitter_ratio", "jitter ×", "↓"), ("frames_per_second", "fps", "↑"),
    ],
    "cross": [
        ("identity", "ID sim", "↑"), ("expression_error", "expr err", "↓"),
        ("yaw_error", "yaw° err", "↓"), ("pitch_error", "pitch° err", "↓"), ("roll_error", "roll° err", "↓"),
        ("jitter_ratio", "jitter ×", "↓"), ("frames_per_second", "fps", "↑"),
        # Whole and in place (dlib only, see evaluation.placement), on the sampled frames.
        ("face_found", "found", "↑"), ("face_shift_p90", "shift p90", "↓"), ("face_shift_max", "shift max", "↓"),
        ("face_zoom_min", "zoom min", "→1"), ("face_zoom_max", "zoom max", "→1"),
        ("id_distance", "ID dist", "↓"), ("id_distance_max", "ID dist max", "↓"),
    ],
}
COUNTS = ("frames", "output_face_lost", "truth_face_lost", "driving_face_lost")
SUMMED = ("face_missing", "placement_source_unseen")  # counts of sampled frames / sources, not of frames
# Across cases an extreme or a percentile is summarised by the worst case, not averaged away.
WORST_BY_SUFFIX = {"_max": max, "_p90": max, "_min": min}
# How the placement targets read in report.md, in the order of placement.TARGETS.
TARGET_LABELS = {
    "found_rate": "found", "shift_p90": "shift p90", "shift_max": "shift max",
    "identity_mean": "ID dist", "identity_max": "ID dist max",
}


def _plain(value):
    """JSON has no infinities or NaN: write them as the strings "inf" / "-inf", and null."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _overall(results: dict[str, dict[str, Series]], engine: str) -> dict[str, float | int]:
    summaries = [per_engine[engine].summary() for per_engine in results.values()]
    keys = {k for s in summaries for k in s}
    return {key: _combine(key, [s[key] for s in summaries if key in s]) for key in sorted(keys)}


def _combine(key: str, values: list) -> float | int:
    if key in COUNTS or key in SUMMED:
        return int(sum(values))
    for suffix, worst in WORST_BY_SUFFIX.items():
        if key.endswith(suffix):
            finite = [v for v in values if v is not None and math.isfinite(v)]
            return worst(finite) if finite else math.nan
    return _mean(values)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite:
        return float(np.mean(finite))
    return math.inf if values and all(v is not None and math.isinf(v) for v in values) else math.nan


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _table(kind: str, rows: dict[str, dict]) -> list[str]:
    cols = COLUMNS[kind]
    lines = ["| | " + " | ".join(f"{label} {better}" for _, label, better in cols) + " | frames | faces lost |"]
    lines.append("|---" * (len(cols) + 3) + "|")
    for name, summary in rows.items():
        lost = sum(int(summary.get(k, 0)) for k in COUNTS[1:])
        cells = " | ".join(_fmt(summary.get(key)) for key, _, _ in cols)
        lines.append(f"| {name} | {cells} | {summary.get('frames', 0)} | {lost} |")
    return lines


def write_report(run: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write the three kinds of report for a ``runner.run_self`` / ``run_cross`` result; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind, engines, results = run["kind"], run["engines"], run["results"]
    overall = {e: _overall(results, e) for e in engines}
    skipped = run.get("skipped", []) + [f"{name}: skipped, {why}" for name, why in OPTIONAL.items()]
    data = {
        "kind": kind,
        "engines": engines,
        "overall": {e: {k: _plain(v) for k, v in o.items()} for e, o in overall.items()},
        "cases": {
            case: {e: {k: _plain(v) for k, v in s.summary().items()} for e, s in per_engine.items()}
            for case, per_engine in results.items()
        },
        "per_frame": {
            case: {e: {k: [_plain(x) for x in v] for k, v in s.values.items()} for e, s in per_engine.items()}
            for case, per_engine in results.items()
        },
        "skipped": skipped,
    }
    source_frames = run.get("source_frames", {})  # self-reenactment: the frame each clip's source was taken from
    if source_frames:
        data["source_frames"] = source_frames
    written = []
    json_path = out / "report.json"
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False))
    written.append(json_path)

    title = "Self-reenactment" if kind == "self" else "Cross-reenactment"
    md = [f"# {title}", "", "## All cases (mean over cases)", ""]
    md += _table(kind, {e: overall[e] for e in engines})
    for case, per_engine in results.items():
        md += ["", f"## {case}", ""]
        if case in source_frames:
            md += [_source_line(source_frames[case]), ""]
        md += _table(kind, {e: s.summary() for e, s in per_engine.items()})
    md += ["", "## Not measured", ""] + [f"- {line}" for line in skipped]
    md += ["", "Arrows: ↑ higher is better, ↓ lower is better, →1 closest to 1 is best. ∞: identical pictures. "
           "Faces lost: frames where no face was found (counted, left out of the landmark metrics)."]
    if kind == "cross":
        md += ["", _placement_note()]
    md_path = out / "report.md"
    with atomic_output(md_path) as tmp:
        tmp.write_text("\n".join(md) + "\n")
    written.append(md_path)
    written += _plots(kind, engines, results, overall, out)
    return written


def _source_line(frame: int) -> str:
    if frame == 0:
        return "Source: frame 0."
    lead_in = "frame 0 is" if frame == 1 else f"frames 0–{frame - 1} are"
    return f"Source: frame {frame}, the first with a face; {lead_in} rendered but not scored."


def _placement_note() -> str:
    targets = ", ".join(f"{TARGET_LABELS[k]} {sense.replace('>=', '≥').replace('<=', '≤')} {limit:g}"
                        for k, (sense, limit) in TARGETS.items())
    return ("Whole and in place (dlib's frontal detector, 5-point model and 128-d descriptor on the sampled frames): "
            f"found = a face within {NEAR:g} face widths of the source's; shift in the source's face widths; zoom = "
            "face size over the source's; ID dist = euclidean distance of the 128-d descriptors to the source's "
            f"(~0.6 separates two people). All cases: worst case for extremes. Targets (issue 15): {targets}.")


def _plots(kind: str, engines: list[str], results: dict, overall: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = ["psnr", "lmd"] if kind == "self" else ["expression_error", "identity", "face_shift"]
    written = []
    for i, (case, per_engine) in enumerate(results.items()):
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.2))
        for ax, key in zip(np.atleast_1d(axes), curves):
            for engine, series in per_engine.items():
                values = [v if math.isfinite(v) else np.nan for v in series.values.get(key, [])]
                ax.plot(values, label=engine, linewidth=1)
            ax.set_title(key)
            ax.set_xlabel("sampled frame" if key in ("identity", "face_shift") else "frame")
            ax.legend(fontsize=7)
        fig.suptitle(case, fontsize=9)
        fig.tight_layout()
        path = out / f"frames_{i:02d}.png"
        _save_figure(fig, path)
        written.append(path)
    keys = [k for k, _, _ in COLUMNS[kind] if k != "frames_per_second"]
    cols = min(5, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    for ax, (key, label, better) in zip(axes.ravel(), [c for c in COLUMNS[kind] if c[0] in keys]):
        values = [overall[e].get(key, np.nan) for e in engines]
        values = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        ax.bar(range(len(engines)), values, color=[f"C{j}" for j in range(len(engines))])
        ax.set_xticks(range(len(engines)), engines, rotation=45, fontsize=7)
        ax.set_title(f"{label} {better}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    path = out / "metrics_by_engine.png"
    _save_figure(fig, path)
    written.append(path)
    return written


def _save_figure(fig, path: Path) -> None:
    """A plot written whole or not at all, like every other output."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
