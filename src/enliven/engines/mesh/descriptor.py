"""The ``mesh`` engine's descriptor (see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor, EngineOption

DESCRIPTOR = EngineDescriptor(
    name="mesh",
    system="enliven's own: a training-free dense warp on the face mesh",
    factory="enliven.engines.mesh.engine:MeshEngine",
    needs="nothing: MediaPipe's face mesh ships inside its wheel",
    options=(
        EngineOption(
            "mouth", metavar="auto|driver|synth|source",
            help="the inside of an opening mouth: the driver's own (driver; from a driving video or picture), drawn "
                 "teeth and tongue (synth), a dark gap (source); the source's own teeth are kept in every mode "
                 "(default auto: the driver's when there is one, else drawn)"),
        EngineOption(
            "wrinkles", parse=float, metavar="S",
            help="how strongly the driver's wrinkles (forehead, eye corners, folds beside the nose) are carried over "
                 "from a driving video: 0 off (default) … 1 as the driver's … 3"),
    ),
)
