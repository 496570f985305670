from __future__ import annotations

import cv2
import numpy as np
import pytest

from offload_core.engine.image import ImageError, decode_image, encode_jpeg, image_from_raw
from offload_core.engine.spec import InputSpec, ModelSpec
from offload_core.engine.tasks.base import normalize

pytestmark = pytest.mark.unit


def test_jpeg_round_trip_keeps_size_and_content() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :30] = (0, 0, 255)
    back = decode_image(encode_jpeg(image, 95))
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 4


def test_jpeg_tables_are_fitted_to_the_frame_same_pixels_fewer_bytes() -> None:
    image = cv2.resize(np.random.default_rng(3).integers(0, 256, (60, 80, 3), np.uint8), (640, 480))
    for quality in (35, 90):
        _, stock = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        fitted = encode_jpeg(image, quality)
        assert len(fitted) < 0.97 * len(stock), (quality, len(fitted), len(stock))
        assert np.array_equal(decode_image(fitted), decode_image(stock.tobytes()))


def test_png_and_webp_decode() -> None:
    image = np.full((10, 12, 3), 200, np.uint8)
    for ext in (".png", ".webp"):
        ok, buf = cv2.imencode(ext, image)
        assert ok
        assert decode_image(buf.tobytes()).shape == (10, 12, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"not an image at all", "could not decode"), (b"\xff\xd8\xff\xe0garbage", "could not decode")],
)
def test_bad_bytes_get_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_huge_images_are_refused_from_the_header_before_decoding() -> None:
    _ok, buf = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:20] = (10_000).to_bytes(4, "big")  # claim 10000 x 10000
    data[20:24] = (10_000).to_bytes(4, "big")
    with pytest.raises(ImageError, match="megapixels"):
        decode_image(bytes(data))


def test_raw_pixels_must_match_shape_and_dtype() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(image_from_raw(image.tobytes(), [2, 3, 3], "uint8"), image)
    assert image_from_raw(bytes(6), [2, 3], "uint8").shape == (2, 3, 3)
    with pytest.raises(ImageError, match="needs 18"):
        image_from_raw(image.tobytes()[:-1], [2, 3, 3], "uint8")
    with pytest.raises(ImageError, match="uint8"):
        image_from_raw(image.tobytes(), [2, 3, 3], "float32")
    with pytest.raises(ImageError, match="positive"):
        image_from_raw(b"", [0, 3, 3], "uint8")


@pytest.mark.parametrize("order", ["BGR", "RGB"])
def test_normalize_matches_the_textbook_formula_channel_first(order: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3)).astype(np.uint8)
    spec = InputSpec(color_order=order, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    pixels = image[:, :, ::-1] if order == "RGB" else image
    expected = (pixels.astype(np.float32) * spec.scale - np.float32(spec.mean)) / np.float32(spec.std)
    tensor = normalize(image, ModelSpec.model_construct(input=spec))
    assert tensor.shape == (1, 3, 30, 50) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0], expected.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
