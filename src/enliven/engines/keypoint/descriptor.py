"""The ``keypoint`` engine's descriptor (LivePortrait; see ``engines.descriptor``)."""

from enliven.engines.descriptor import EngineDescriptor, EngineOption

DESCRIPTOR = EngineDescriptor(
    name="keypoint",
    system="LivePortrait",
    factory="enliven.engines.keypoint.engine:KeypointEngine",
    needs="the official LivePortrait weights: `enliven weights download liveportrait` or --weights DIR",
    weights="liveportrait",
    extracts=True,
    options=(
        EngineOption("region", choices=("all", "exp", "pose", "lip", "eyes"),
                     help="animate only this region (default: all)"),
        EngineOption("stitching", flag="--no-stitching", switch_value=False, help="turn off the stitching MLP"),
        EngineOption("driving_option", flag="--pose-friendly", switch_value="pose-friendly",
                     help="skip the expression-friendly keypoint scaling"),
        EngineOption("backend", choices=("torch", "onnx"),
                     help="run the networks in PyTorch (default) or onnxruntime (graphs from `enliven weights "
                          "export-onnx`)"),
    ),
)
