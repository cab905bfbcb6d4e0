"""The ``implicit-diffusion`` engine's descriptor (HunyuanPortrait; see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor, EngineOption
from enliven.engines.diffusion.options import DIFFUSION_OPTIONS

# The release's config/hunyuan-portrait.yaml options past steps, guidance and seed, with its defaults.
RELEASE_OPTIONS = (
    EngineOption("i2i_noise_strength", parse=float, metavar="S",
                 help="start part-way down the noise schedule, as the release's i2i_noise_strength: only the last "
                      "int(steps × S) steps run, from the reference's latent noised to their first level "
                      "(0 < S ≤ 1, default 1: every step, from pure noise)"),
    EngineOption("motion_bucket", parse=int, metavar="ID",
                 help="the UNet's motion bucket id (the release's motion_bucket_id, 0–1000, default 0)"),
    EngineOption("motion_scale", parse=float, metavar="W",
                 help="weight of the motion tokens' attention (the release's ip_motion_scale, default 1)"),
    EngineOption("fps_condition", parse=float, metavar="FPS",
                 help="the frame rate the UNet is conditioned on (the release's fps, default 12.5; not the "
                      "output's)"),
    EngineOption("noise_augmentation", parse=float, metavar="S",
                 help="noise added to the reference picture before the latent every frame carries, and the "
                      "UNet's third time id (the release's noise_aug_strength, 0–1, default 0)"),
)

DESCRIPTOR = EngineDescriptor(
    name="implicit-diffusion",
    system="HunyuanPortrait",
    factory="enliven.engines.implicit_diffusion.engine:ImplicitDiffusionEngine",
    needs="the diffusion extra (pip install 'enliven[diffusion]') and the official HunyuanPortrait weights: "
          "`enliven weights download hunyuan-portrait` or --weights DIR; a GPU (--device cuda) in practice",
    weights="hunyuan-portrait",
    extra_module="diffusers",
    options=DIFFUSION_OPTIONS + RELEASE_OPTIONS,
    windowed=True,
    video_source=False,
    audio=False,
)
