"""Build ``src/enliven/assets/face_model.npz``: our canonical face, mesh triangles and mirror pairs.

MediaPipe's wheel ships the face-mesh *edges* but not its canonical face model, so we derive one:
landmarks of the bundled portrait (nearly frontal), rotated into the face's own symmetry frame and
averaged with their mirror images. The result is a frontal, upright, left/right symmetric face that
pose fitting uses as the zero pose. Run from the repository root:

    python tools/build_face_model.py
"""

from __future__ import annotations

import collections
import itertools
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from enliven.face.analyzer import FaceAnalyzer
from enliven.io.images import read_image

ASSETS = Path(__file__).resolve().parents[1] / "src" / "enliven" / "assets"


def mesh_triangles(points_2d: np.ndarray) -> np.ndarray:
    """Faces of the tessellation: its 3-cliques, minus the few 3-cycles that enclose other faces."""
    from mediapipe.python.solutions import face_mesh_connections

    edges = {tuple(sorted(e)) for e in face_mesh_connections.FACEMESH_TESSELATION}
    neighbours = collections.defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}

    def encloses_a_vertex(tri):
        a, b, c = points_2d[list(tri)]
        others = np.delete(points_2d[:468], list(tri), axis=0)
        m = np.array([b - a, c - a]).T
        uv = np.linalg.solve(m, (others - a).T).T
        return bool(np.any((uv[:, 0] > 0) & (uv[:, 1] > 0) & (uv.sum(1) < 1)))

    # A 3-cycle around other faces shows up as a clique whose edges are shared three times.
    shared = collections.Counter(e for t in cliques for e in itertools.combinations(t, 2))
    suspects = {t for t in cliques if any(shared[e] > 2 for e in itertools.combinations(t, 2))}
    triangles = [t for t in sorted(cliques) if t not in suspects or not encloses_a_vertex(t)]
    counts = collections.Counter(e for t in triangles for e in itertools.combinations(t, 2))
    assert max(counts.values()) == 2, "tessellation is not a manifold after filtering"
    tris = np.array(triangles, dtype=np.int32)
    # Orient every triangle counter-clockwise in image space (y down) so areas have one sign.
    p = points_2d[tris]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    tris[cross < 0] = tris[cross < 0][:, [0, 2, 1]]
    return tris


def symmetry_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterate mirror pairing and symmetry-plane fitting; return (rotation rows, origin, pairs)."""
    normal = points[263] - points[33]
    normal /= np.linalg.norm(normal)
    for _ in range(6):
        offset = float(np.median(points @ normal))
        mirrored = points - 2.0 * ((points @ normal) - offset)[:, None] * normal
        cost = np.linalg.norm(points[:, None, :] - mirrored[None, :, :], axis=2)
        _, pairs = linear_sum_assignment(cost)
        diffs = points - points[pairs]
        scatter = diffs.T @ diffs
        normal_new = np.linalg.eigh(scatter)[1][:, -1]
        normal = normal_new if normal_new @ normal > 0 else -normal_new
    x_axis = normal
    down = (points[61] + points[291]) / 2 - (points[33] + points[263]) / 2
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    origin = (points[pairs] + points).mean(0) / 2
    return np.stack([x_axis, y_axis, z_axis]), origin, pairs


def main() -> None:
    image = read_image(ASSETS / "portrait.png")
    with FaceAnalyzer(static=True) as analyzer:
        face = analyzer.detect(image)[0]
    pts = face.landmarks.astype(np.float64)
    triangles = mesh_triangles(pts[:, :2])
    rot, origin, pairs = symmetry_frame(pts)
    local = (pts - origin) @ rot.T
    flipped = local[pairs] * np.array([-1.0, 1.0, 1.0])
    canonical = (local + flipped) / 2
    canonical /= np.linalg.norm(canonical[263] - canonical[33])  # unit: outer eye-corner distance
    assert np.all(pairs[pairs] == np.arange(len(pairs))), "mirror pairing is not an involution"
    np.savez(
        ASSETS / "face_model.npz",
        canonical=canonical.astype(np.float32),
        triangles=triangles,
        mirror=pairs.astype(np.int32),
        schema=np.int32(1),
    )
    print(f"triangles {len(triangles)}, self-mirrored points {(pairs == np.arange(len(pairs))).sum()}")


if __name__ == "__main__":
    main()
