"""Region requests against the real server: crops in, words out in the frame's coordinates."""

from __future__ import annotations

import itertools

import grpc
import numpy as np
import pytest

from offload_core.engine.geometry import bounds, quad_iou
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_core.regions import MAX_REGIONS, Crop, find_parts, region_request
from offload_core.wire import jpeg_request, prediction_from_pb
from offload_server import OffloadServer
from offload_tools.evaluation import match, score_frame
from offload_tools.sample import GroundTruth, WordTruth, render_frames

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]


@pytest.fixture(scope="module")
def stub(server: OffloadServer) -> pb_grpc.OffloadStub:
    return pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))


def around(word: WordTruth, frame: np.ndarray, margin: int, read: bool = False) -> Crop:
    """The word's bounding rectangle grown by `margin` px, inside the frame."""
    x1, y1, x2, y2 = bounds(np.asarray(word.quad))
    height, width = frame.shape[:2]
    left, top = max(0, int(x1) - margin), max(0, int(y1) - margin)
    right, bottom = min(width, int(np.ceil(x2)) + margin), min(height, int(np.ceil(y2)) + margin)
    return Crop(left, top, right - left, bottom - top, read=read)


def busiest(sample: Sample) -> int:
    frames, truth = sample
    return max(range(len(frames)), key=lambda i: len(truth.frames[i].words))


def test_words_found_in_crops_land_where_they_are_in_the_frame(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    frames, truth = sample
    i = busiest(sample)
    words = truth.frames[i].words
    crops = [around(w, frames[i], 24) for w in words]
    request, _ = region_request("text-spotter", i, frames[i], crops, 0)
    whole, _ = jpeg_request("text-spotter", i, frames[i], 90, 0)
    assert request.ByteSize() < whole.ByteSize()  # the walls stayed home
    response = stub.Infer(request, timeout=30)
    assert set(response.accepts) == {"regions", "read-regions"}
    prediction = prediction_from_pb(response)
    score = score_frame(words, prediction.boxes, prediction.texts)
    assert score.true_positives >= len(words) - 1, score  # found, in frame coordinates (IoU >= 0.5)
    assert score.words_correct >= len(words) - 1, score


def test_one_small_crop_finds_its_word_where_the_whole_frame_does(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    # The model runs on the crop's part of the frame only (cheap), at the whole frame's scale (the same word).
    frames, truth = sample
    found = 0
    for i, frame in enumerate(frames):
        whole = prediction_from_pb(stub.Infer(jpeg_request("text-spotter", i, frame, 90, 0)[0], timeout=30))
        for word in truth.frames[i].words:
            on_whole = [t for t in whole.texts if match([word], [t.box])]
            if not on_whole:
                continue
            request, _ = region_request("text-spotter", i, frame, [around(word, frame, 24)], 0)
            prediction = prediction_from_pb(stub.Infer(request, timeout=30))
            at_word = [t for t in prediction.texts if match([word], [t.box])]
            assert len(at_word) == 1, (word.text, prediction.texts)
            assert at_word[0].text == on_whole[0].text
            assert quad_iou(np.asarray(at_word[0].box.points), np.asarray(on_whole[0].box.points)) > 0.8
            found += 1
    assert found >= 3


def test_crops_far_apart_are_each_found_in_their_own_part_of_the_frame(stub: pb_grpc.OffloadStub) -> None:
    frames, truth = render_frames(seed=5, frames=30, style="pan")  # a wall of signs: words all over the view
    pairs = (
        (frames[i], first, second)
        for i in range(len(frames))
        for first, second in itertools.combinations(truth.frames[i].words, 2)
    )
    for frame, first, second in pairs:
        request, _ = region_request("text-spotter", 0, frame, [around(first, frame, 24), around(second, frame, 24)], 0)
        if len(find_parts(request)) == 2:
            break
    else:
        pytest.fail("the sample has no two words far enough apart")
    whole = prediction_from_pb(stub.Infer(jpeg_request("text-spotter", 0, frame, 90, 0)[0], timeout=30))
    prediction = prediction_from_pb(stub.Infer(request, timeout=30))
    # Each part finds and reads what the whole frame does there, in the frame's coordinates.
    parts, on_whole = (score_frame([first, second], p.boxes, p.texts) for p in (prediction, whole))
    assert (parts.true_positives, parts.words_correct) == (on_whole.true_positives, on_whole.words_correct)
    assert parts.true_positives >= 1, (first.text, second.text, prediction.texts)


def test_a_read_region_is_read_alone_and_replaces_what_was_found_there(
    stub: pb_grpc.OffloadStub, sample: Sample
) -> None:
    frames, truth = sample
    i = busiest(sample)
    word = max(truth.frames[i].words, key=lambda w: len(w.text))
    height, width = frames[i].shape[:2]
    read = around(word, frames[i], 4, read=True)
    # The whole frame scaled to a third (FIND), and the word sharp (READ): the word comes back once, read.
    crops = [Crop(0, 0, width, height, quality=35, scale=1 / 3), read]
    request, _ = region_request("text-spotter", i, frames[i], crops, 0)
    prediction = prediction_from_pb(stub.Infer(request, timeout=30))
    at_word = [t for t in prediction.texts if match([word], [t.box])]
    assert [t.text for t in at_word] == [word.text]
    (x1, y1, x2, y2) = bounds(np.asarray(at_word[0].box.points))
    assert (x1, y1, x2, y2) == (read.x, read.y, read.x + read.width, read.y + read.height)  # the crop's box
    # Only READ regions: no detector runs, and the word is still read.
    request, _ = region_request("text-spotter", i, frames[i], [read], 0)
    response = stub.Infer(request, timeout=30)
    assert [t.text for t in response.texts] == [word.text]


def test_whole_frames_still_work_and_list_models_says_what_each_model_accepts(
    stub: pb_grpc.OffloadStub, sample: Sample
) -> None:
    frames, truth = sample
    request, _ = jpeg_request("text-spotter", 3, frames[3], 90, 0)
    response = stub.Infer(request, timeout=30)
    assert response.frame_id == 3 and {t.text for t in response.texts} & {w.text for w in truth.frames[3].words}
    models = {m.name: list(m.capabilities) for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert models == {"text-spotter": ["regions", "read-regions"], "text-orientation": []}


def malformed(frame: np.ndarray) -> dict[str, tuple[pb.InferRequest, str]]:
    """Requests a server must refuse, and what its message must say."""
    height, width = frame.shape[:2]

    def regions(crops: list[Crop], model: str = "text-spotter") -> pb.InferRequest:
        return region_request(model, 0, frame, crops, 0)[0]

    outside = regions([Crop(0, 0, 32, 32)])
    outside.regions[0].x = width - 10
    zero = regions([Crop(0, 0, 32, 32)])
    zero.regions[0].width = 0
    no_size = regions([Crop(0, 0, 32, 32)])
    no_size.frame_width = 0
    both = regions([Crop(0, 0, 32, 32)])
    both.encoded.data = b"\xff\xd8"
    larger = regions([Crop(0, 0, 64, 64)])
    larger.regions[0].width = larger.regions[0].height = 16
    broken = regions([Crop(0, 0, 32, 32)])
    broken.regions[0].image.data = b"not a jpeg"
    return {
        "outside the frame": (outside, "region 0 (32x32 at x=630, y=0) reaches outside the 640x360 frame"),
        "zero size": (zero, "region 0 has zero size (0x32)"),
        "too many": (regions([Crop(0, 0, 8, 8)] * (MAX_REGIONS + 1)), f"at most {MAX_REGIONS}"),
        "too large": (regions([Crop(0, 0, width, height)] * 3), "cover 3.0x the frame"),
        "no frame size": (no_size, "need the frame's size"),
        "image and regions": (both, "both an image and `regions`"),
        "image larger than its place": (larger, "region 0's image is 64x64, larger than its 16x16"),
        "undecodable": (broken, "region 0:"),
        "model without regions": (regions([Crop(0, 0, 32, 32)], "text-orientation"), "whole frames only"),
    }


def test_malformed_regions_get_invalid_argument_saying_which_and_why(stub: pb_grpc.OffloadStub, sample: Sample) -> None:
    frames, _ = sample
    for case, (request, says) in malformed(frames[0]).items():
        with pytest.raises(grpc.RpcError) as err:
            stub.Infer(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert says in (err.value.details() or ""), (case, err.value.details())
    request, _ = jpeg_request("text-spotter", 1, frames[1], 90, 0)
    assert stub.Infer(request, timeout=30).frame_id == 1  # and the server goes on serving
