"""The options every diffusion engine takes, each engine with its release's defaults (see their descriptors)."""

from enliven.engines.descriptor import EngineOption

DIFFUSION_OPTIONS = (
    EngineOption("device", help="cpu, cuda or auto (default: auto, the GPU if PyTorch sees one)"),
    EngineOption("steps", parse=int, help="denoising steps (default: the release's): fewer is faster and rougher"),
    EngineOption("guidance", parse=float,
                 help="classifier-free guidance scale (default: the release's); landmark-diffusion: 1 or less turns "
                      "it off; implicit-diffusion: both its scales (appearance and motion), 1 runs the plain "
                      "prediction; audio-diffusion: 1 or less runs the conditional branch alone (the release "
                      "crashes there)"),
    EngineOption("seed", parse=int, help="initial noise seed (default: the release's): same seed, same frames"),
)
