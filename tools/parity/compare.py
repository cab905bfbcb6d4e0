"""Print our differences from a release's fixture, one line per figure the README quotes.

    python tools/parity/compare.py landmark-diffusion     # tests/engines/data/landmark_diffusion_release.npz
    python tools/parity/compare.py implicit-diffusion     # tests/engines/data/implicit_diffusion_*.npz
    python tools/parity/compare.py audio-diffusion        # tests/engines/data/audio_diffusion_release.npz

Run in enliven's environment (``.venv``); the fixtures come from ``follow_your_emoji.py``,
``hunyuan_portrait.py`` and ``hallo.py`` run on the releases' own code. One thread, as the fixtures were made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def report(checks: dict, fixture, title: str) -> int:
    print(title)
    failed = 0
    for name, (check, tolerance, label) in checks.items():
        value = check(fixture)
        ok = value <= tolerance
        failed += not ok
        print(f"  {label:72s} {value:9.2e}  (tolerance {tolerance:g}{'' if ok else ', EXCEEDED'})  [{name}]")
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=["landmark-diffusion", "implicit-diffusion", "audio-diffusion"])
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.engine == "landmark-diffusion":
        import landmark_diffusion_checks as checks

        fixture = checks.Fixture()
    elif args.engine == "audio-diffusion":
        import audio_diffusion_checks as checks

        fixture = checks.Fixture()
    else:
        import implicit_diffusion_checks as checks

        fixture = checks.Fixture()
    meta = fixture.meta
    title = (f"{args.engine} against {meta['release']} {meta['commit'][:12]} (its run: diffusers {meta['diffusers']}, "
             f"torch {meta['torch']}, CPU fp32); max |ours - release| / max |release|:")
    return 1 if report(checks.CHECKS, fixture, title) else 0


if __name__ == "__main__":
    sys.exit(main())
