"""The ``landmark-diffusion`` engine's descriptor (Follow-Your-Emoji; see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor
from enliven.engines.diffusion.options import DIFFUSION_OPTIONS

DESCRIPTOR = EngineDescriptor(
    name="landmark-diffusion",
    system="Follow-Your-Emoji",
    factory="enliven.engines.landmark_diffusion.engine:LandmarkDiffusionEngine",
    needs="the diffusion extra (pip install 'enliven[diffusion]') and the official Follow-Your-Emoji weights: "
          "`enliven weights download follow-your-emoji` or --weights DIR; a GPU (--device cuda) in practice",
    weights="follow-your-emoji",
    extra_module="diffusers",
    options=DIFFUSION_OPTIONS,
    windowed=True,
    video_source=False,
)
