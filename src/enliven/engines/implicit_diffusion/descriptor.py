"""The ``implicit-diffusion`` engine's descriptor (HunyuanPortrait; see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor
from enliven.engines.diffusion.options import DIFFUSION_OPTIONS

DESCRIPTOR = EngineDescriptor(
    name="implicit-diffusion",
    system="HunyuanPortrait",
    factory="enliven.engines.implicit_diffusion.engine:ImplicitDiffusionEngine",
    needs="the diffusion extra (pip install 'enliven[diffusion]') and the official HunyuanPortrait weights: "
          "`enliven weights download hunyuan-portrait` or --weights DIR; a GPU (--device cuda) in practice",
    weights="hunyuan-portrait",
    extra_module="diffusers",
    options=DIFFUSION_OPTIONS,
    windowed=True,
    video_source=False,
    audio=False,
)
