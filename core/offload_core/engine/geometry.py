"""Quadrilateral helpers shared by detection, cropping and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from shapely.geometry import Polygon


def order_clockwise(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def crop_quad(image: np.ndarray, quad: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Rectify the quadrilateral region into an upright crop (tall crops are rotated flat).

    `margin` widens the crop on every side by that fraction of the quad's height: a reader
    sees the letters' edges, which a tight detector box can shave.
    """
    q = np.asarray(quad, dtype=np.float32)
    if margin:
        along = (q[1] - q[0]) / max(float(np.linalg.norm(q[1] - q[0])), 1e-6)
        across = (q[3] - q[0]) / max(float(np.linalg.norm(q[3] - q[0])), 1e-6)
        grow = margin * (np.linalg.norm(q[0] - q[3]) + np.linalg.norm(q[1] - q[2])) / 2
        q = q + np.array([-along - across, along - across, along + across, across - along], np.float32) * grow
    width = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    height = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(q, target)
    crop = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.rot90(crop)
    return crop


def quad_iou(a: list[tuple[float, float]] | np.ndarray, b: list[tuple[float, float]] | np.ndarray) -> float:
    """Intersection over union of two polygons; 0 for degenerate ones."""
    pa, pb = Polygon(a), Polygon(b)
    if not pa.is_valid:
        pa = pa.buffer(0)
    if not pb.is_valid:
        pb = pb.buffer(0)
    if pa.area <= 0 or pb.area <= 0:
        return 0.0
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return float(inter / union) if union > 0 else 0.0


def rect_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two axis-aligned rectangles (x1, y1, x2, y2)."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - w * h
    return w * h / union if union > 0 else 0.0


def bounds(quad: np.ndarray) -> tuple[float, float, float, float]:
    """A quad's bounding rectangle (x1, y1, x2, y2)."""
    (x1, y1), (x2, y2) = quad.min(axis=0), quad.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def centre_inside(quad: np.ndarray, x: float, y: float, width: float, height: float) -> bool:
    """Whether the centre of a quad's bounding rectangle lies in the rectangle (x, y, width, height)."""
    x1, y1, x2, y2 = bounds(quad)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return x <= cx <= x + width and y <= cy <= y + height


def reading_order(quads: list[np.ndarray], line_tolerance: float = 10.0) -> list[int]:
    """Indices of quads sorted top-to-bottom, then left-to-right within a line."""
    tops = [(float(q[0][1]), float(q[0][0]), i) for i, q in enumerate(quads)]
    tops.sort()
    order: list[int] = []
    line: list[tuple[float, float, int]] = []
    for item in tops:
        if line and item[0] - line[0][0] > line_tolerance:
            order.extend(i for _, _, i in sorted(line, key=lambda t: t[1]))
            line = []
        line.append(item)
    order.extend(i for _, _, i in sorted(line, key=lambda t: t[1]))
    return order
