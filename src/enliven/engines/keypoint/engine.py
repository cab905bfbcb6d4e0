"""The ``keypoint`` engine: LivePortrait inference on our streaming pipeline.

Per source (once): F(s) → feature volume, M(s) → source keypoints x_s, open ratios from our landmarks.
Per frame: driving keypoints from M on the driver's face crop (video/image driving), or, for motion
without pixels (presets, landmark templates), the source's keypoints turned by the landmarks' head
rotation and moved by the eye/lip retargeting MLPs towards the landmarks' open ratios. Then the
relative/absolute rule, expression-friendly scaling, stitching, lip normalisation and the multiplier,
and W + G decode the 512² crop.

Eye and lip open ratios are measured on MediaPipe's 478 landmarks with LivePortrait's definitions
(lid gap over eye width at points 159/145 over 33/133 and 386/374 over 362/263; inner-lip gap 13/14
over mouth width 61/291), in 3D. LivePortrait measures them on its own 203-point model in 2D, and its
retargeting MLPs were trained on those values: ours describe the same openings but are not the same
numbers (not yet compared on real faces with the official landmark model).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from enliven.engines.base import SourceState
from enliven.engines.keypoint import kinematics as kin
from enliven.engines.keypoint.backends import OnnxBackend, TorchBackend
from enliven.engines.keypoint.checkpoints import load_config, load_official
from enliven.errors import EnlivenError
from enliven.face import geometry
from enliven.face.crop import CropSpec
from enliven.face.paste import square_mask
from enliven.motion.align import LIP_NORMALIZE_THRESHOLD, AlignOptions, MotionRules
from enliven.motion.frame import MotionFrame
from enliven.motion.smooth import OneEuroFilter

DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")


class KeypointEngine:
    name = "keypoint"
    reads_keypoints = True  # renders LivePortrait's own motion (templates imported from its .pkl have nothing else)
    # Head angles (yaw, pitch, roll; degrees) it renders cleanly: LivePortrait was trained on large poses, but
    # past these the hidden side of the head is invented and the stitching drifts.
    pose_limits = (40.0, 30.0, 35.0)

    def __init__(
        self,
        weights: str | None = None,
        region: str = "all",
        relative: bool = True,
        stitching: bool = True,
        driving_option: str = "expression-friendly",
        device: str = "cpu",
        backend: str = "torch",
        onnx_dir: str | None = None,
        align: AlignOptions | None = None,
    ):
        """``backend``: "torch", or "onnx" to run graphs from ``enliven weights export-onnx`` (``onnx_dir``,
        default ``WEIGHTS/onnx``) in onnxruntime."""
        from enliven import weights as weight_store

        if region not in kin.REGIONS:
            raise EnlivenError(f"region must be one of {', '.join(kin.REGIONS)}, got {region!r}")
        if driving_option not in DRIVING_OPTIONS:
            raise EnlivenError(f"driving option must be one of {', '.join(DRIVING_OPTIONS)}, got {driving_option!r}")
        if backend not in ("torch", "onnx"):
            raise EnlivenError(f"backend must be torch or onnx, got {backend!r}")
        folder = weight_store.resolve("liveportrait", weights)
        config = load_config(folder)
        self.device = torch.device(device)
        if backend == "onnx":
            self.backend = OnnxBackend(onnx_dir or Path(folder) / "onnx")
        else:
            self.backend = TorchBackend(load_official(folder, config=config, device=self.device))
        self.input_size = config.input_size
        align = align or AlignOptions()
        self.relative, self.multiplier, self.controls = align.relative, align.multiplier, align.controls
        self.region, self.stitching = region, stitching
        self.driving_option, self.normalize_lip = driving_option, align.normalize_lip
        self.follow_camera = align.follow_camera
        # LivePortrait zeroes the depth translation of driven keypoints, except where its expression-friendly
        # rule puts the change back onto the source's own keypoints (see _from_vector).
        zero_depth = not self.relative or driving_option == "pose-friendly"
        self._depth_kept = torch.tensor([1.0, 1.0, 0.0 if zero_depth else 1.0])
        # LivePortrait crops driving videos axis-aligned, 2.2x the face, shifted up by 0.1.
        self.driving_crop = CropSpec(size=self.input_size, scale=2.2, vy=-0.1, rotate=False)

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        if image.shape[0] != self.input_size:
            image = cv2.resize(image, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float() / 255.0

    @torch.no_grad()
    def _motion(self, image: np.ndarray) -> kin.KeypointMotion:
        return kin.decode_motion(self.backend.motion(self._tensor(image)))

    @torch.no_grad()
    def prepare(self, crop_image: np.ndarray, landmarks: np.ndarray, session: dict | None = None) -> SourceState:
        x = self._tensor(crop_image)
        info = kin.decode_motion(self.backend.motion(x))
        feature = self.backend.appearance(x)
        x_s = info.keypoints()
        size = crop_image.shape[0]
        return SourceState(
            crop_image=crop_image,
            landmarks=np.asarray(landmarks, np.float64),
            paste_mask=square_mask(size),
            cache={
                "feature": feature,
                "info": info,
                "x_s": x_s,
                "warp_source": self.backend.source_cache(feature, x_s),
                "pose": geometry.fit_pose(landmarks),
                "eyes": torch.tensor(geometry.eye_open_ratios(landmarks), dtype=torch.float32)[None],
                "lip": torch.tensor([[float(geometry.lip_open_ratio(landmarks))]]),
            },
            session={} if session is None else session,
        )

    def extract(self, crop: np.ndarray) -> dict[str, np.ndarray]:
        """LivePortrait motion of one driving crop, as arrays for a template (``MotionFrame.keypoints``)."""
        return {k: v[0] for k, v in self._motion(crop).to_numpy().items()}

    def _driving(self, frame: MotionFrame) -> kin.KeypointMotion | None:
        if frame is None:
            return None
        if frame.keypoints is not None:
            return kin.KeypointMotion.from_numpy({k: np.asarray(v)[None] for k, v in frame.keypoints.items()})
        if frame.crop is not None:
            return self._motion(frame.crop)
        return None

    def _reference(self, state: SourceState, driving: kin.KeypointMotion, frame: MotionFrame) -> kin.KeypointMotion:
        """The motion this frame's change is measured from: its shot's reference frame (``frame.anchor``, cut from
        the driver with the same box), else the first driving frame (LivePortrait's rule)."""
        session = state.session
        anchor = frame.anchor if frame is not None else None
        if anchor is not None and (anchor.crop is not None or anchor.keypoints is not None):
            if session.get("reference_of") is not anchor:
                session["reference_of"], session["reference"] = anchor, self._driving(anchor)
            return session["reference"]
        return session.setdefault("reference", driving)

    def _live_motion(self, state: SourceState, moved: kin.KeypointMotion) -> tuple:
        """``moved`` as ``MotionRules``' live motion in keypoint space: expression offsets from the source, the
        target rotation (as a column-vector matrix: LivePortrait's act on row vectors), log zoom and shift."""
        source = state.cache["info"]
        exp = (moved.exp - source.exp)[0].cpu().numpy().ravel()
        zoom = float(torch.log(moved.scale / source.scale)[0, 0])
        shift = (moved.t - source.t)[0].cpu().numpy()
        shift[2] = 0.0  # depth: see _from_vector
        return exp, moved.rotation[0].cpu().numpy().T, zoom, shift

    def _from_vector(self, state: SourceState, vector: np.ndarray) -> kin.KeypointMotion:
        """The source moved by a motion vector (``MotionRules``' output); zeros give the source's own keypoints, which
        is what LivePortrait's expression-friendly rule adds the change to. Its pose-friendly rule keeps the
        driven keypoints as they are, with the depth translation zeroed."""
        source = state.cache["info"]
        n = source.exp[0].numel()
        exp = source.exp + torch.as_tensor(vector[:n], dtype=source.exp.dtype).reshape(source.exp.shape)
        src_rotation = source.rotation[0].cpu().numpy().T
        rotation = (Rotation.from_rotvec(vector[n : n + 3]).as_matrix() @ src_rotation).T
        return replace(
            source,
            exp=exp,
            rotation=torch.as_tensor(rotation, dtype=source.rotation.dtype)[None],
            scale=source.scale * float(np.exp(vector[n + 3])),
            t=(source.t + torch.as_tensor(vector[n + 4 :], dtype=source.t.dtype)[None]) * self._depth_kept,
        )

    def _from_motion(self, state: SourceState, driving: kin.KeypointMotion | None, frame: MotionFrame) -> torch.Tensor:
        """x_d from driver pixels. ``driving`` None: the driver's face is lost this frame. The change is measured
        from the shot's reference, then goes through the motion rules every engine's motion goes through
        (``motion.align.MotionRules``: pose limits, the camera's limits, lost faces and cuts), in keypoint space."""
        cache, session = state.cache, state.session
        source = cache["info"]
        video_source = session.get("video_source", False)
        live = None
        if driving is not None:
            reference = self._reference(state, driving, frame)
            if self.relative:
                moved = kin.relative_motion(source, driving, reference, self.region)
                if video_source:  # LivePortrait's video editing: the source frame keeps its own size and place
                    t = source.t.clone()
                    t[:, 2] = 0
                    moved = replace(moved, scale=source.scale, t=t)
            else:
                moved = kin.absolute_motion(source, driving)
            live = self._live_motion(state, moved)
        if "rules" not in session:  # the motion rules every engine's motion goes through (motion.align)
            session["rules"] = MotionRules(source.exp[0].numel(), session.get("fps", 25.0), self.pose_limits,
                                           self.follow_camera)
        # LivePortrait's expression-friendly rule adds the change since the first driven frame, scaled by the ratio
        # of the keypoints' hull volumes, to the source's keypoints. Measured from a reference frame, the driven
        # keypoints there are the source's own, so that ratio is 1 and the rule is the motion itself.
        width = float(np.ptp(cache["x_s"][0, :, 0].cpu().numpy()))  # the keypoints span about the face
        motion = session["rules"](live, source.rotation[0].cpu().numpy().T, frame.shot if frame is not None else 0,
                                  camera=not video_source, face_width=width)
        x_d = self._from_vector(state, motion).keypoints()
        if video_source:  # both videos jitter: smooth the keypoints (LivePortrait uses a Kalman filter here)
            smoother = session.setdefault("smoother", OneEuroFilter(session.get("fps", 25.0), 1.0, 2.0))
            x_d = torch.as_tensor(smoother(x_d[0].cpu().numpy()), dtype=x_d.dtype)[None]
        return x_d

    def _from_landmarks(self, state: SourceState, target: np.ndarray) -> torch.Tensor:
        """No driver pixels: turn the source by the landmarks' rotation, retarget eyes and lips to their ratios."""
        cache = state.cache
        source = cache["info"]
        delta = geometry.fit_pose(target).rotation @ cache["pose"].rotation.T  # column-vector camera frame
        rotation = source.rotation @ torch.as_tensor(delta.T, dtype=source.rotation.dtype)[None]
        x_d = replace(source, rotation=rotation).keypoints()
        eyes = float(np.mean(geometry.eye_open_ratios(target)))
        lip = float(geometry.lip_open_ratio(target))
        with torch.no_grad():
            x_d = x_d + kin.retarget_eyes(self.backend.mlp("retarget_eye"), cache["x_s"], cache["eyes"],
                                          torch.tensor([[eyes]]))
            x_d = x_d + kin.retarget_lip(self.backend.mlp("retarget_lip"), cache["x_s"], cache["lip"],
                                         torch.tensor([[lip]]))
        return x_d

    @torch.no_grad()
    def driving_keypoints(self, state: SourceState, target: np.ndarray, frame: MotionFrame | None) -> torch.Tensor:
        """x_d for one frame: the driving rule, stitching, lip normalisation, then the multiplier."""
        cache = state.cache
        driving = self._driving(frame)
        # A driving video's frame where the face is lost has no pixels to read, but belongs to the pixel path.
        from_pixels = driving is not None or (frame is not None and not frame.valid and "rules" in state.session)
        x_d = self._from_motion(state, driving, frame) if from_pixels else self._from_landmarks(state, target)
        if self.stitching:
            x_d = kin.stitch(self.backend.mlp("stitching"), cache["x_s"], x_d)
        # landmark targets come from the aligner, which closed the source's mouth already
        if from_pixels and self.normalize_lip and float(cache["lip"]) >= LIP_NORMALIZE_THRESHOLD:
            x_d = x_d + kin.retarget_lip(self.backend.mlp("retarget_lip"), cache["x_s"], cache["lip"],
                                         torch.zeros(1, 1))
        if from_pixels and self.multiplier != 1.0:  # landmark targets already carry it (the aligner applied it)
            x_d = cache["x_s"] + (x_d - cache["x_s"]) * self.multiplier
        if from_pixels:  # eye/lip retargeting targets (LivePortrait's sliders); the landmark path has them already
            x_d = x_d + self._retargeting(cache)
        return x_d

    def _retargeting(self, cache: dict) -> torch.Tensor | float:
        delta: torch.Tensor | float = 0.0
        eyes, lip = self.controls.eyes_open, self.controls.lip_open
        if eyes is not None:  # the eye MLP takes one target ratio (as LivePortrait feeds it): both eyes' mean
            target = torch.tensor([[float(np.mean(eyes))]])
            delta = delta + kin.retarget_eyes(self.backend.mlp("retarget_eye"), cache["x_s"], cache["eyes"], target)
        if lip is not None:
            delta = delta + kin.retarget_lip(self.backend.mlp("retarget_lip"), cache["x_s"], cache["lip"],
                                             torch.tensor([[lip]]))
        return delta

    @torch.no_grad()
    def decode(self, state: SourceState, x_d: torch.Tensor) -> np.ndarray:
        cache = state.cache
        image = self.backend.warp_decode(cache["feature"], x_d, cache["x_s"], cache["warp_source"])
        out = (image[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
        size = state.crop_image.shape[0]
        if out.shape[0] != size:
            out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
        return out

    def render(self, state: SourceState, target: np.ndarray, frame: MotionFrame | None = None) -> np.ndarray:
        return self.decode(state, self.driving_keypoints(state, target, frame))
