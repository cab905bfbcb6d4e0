"""The ``audio-diffusion`` engine's descriptor (EMO's design on Hallo's weights; see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor, EngineOption
from enliven.engines.diffusion.options import DIFFUSION_OPTIONS

DESCRIPTOR = EngineDescriptor(
    name="audio-diffusion",
    system="EMO's design on Hallo's weights",
    factory="enliven.engines.audio_diffusion.engine:AudioDiffusionEngine",
    needs="the diffusion extra (pip install 'enliven[diffusion]') and Hallo's official weights: "
          "`enliven weights download hallo` or --weights DIR; speech (--audio or --text); a GPU (--device cuda) "
          "in practice",
    weights="hallo",
    extra_module="diffusers",
    options=DIFFUSION_OPTIONS + (
        EngineOption("pose_weight", parse=float, metavar="W",
                     help="weight of the audio's effect outside the face (the release's, default 1)"),
        EngineOption("face_weight", parse=float, metavar="W",
                     help="weight of the audio's effect on the face (the release's, default 1)"),
        EngineOption("lip_weight", parse=float, metavar="W",
                     help="weight of the audio's effect on the lips (the release's, default 1)"),
        EngineOption("speed", parse=int, metavar="BUCKET",
                     help="EMO's head-speed bucket (0 = slowest), for weights whose speed layers were trained "
                          "(enliven train audio-diffusion); Hallo's have none (default: no speed condition)"),
    ),
    windowed=True,
    video_source=False,
    capabilities=("needs speech: --audio FILE or --text TEXT",),
)
