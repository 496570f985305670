"""Run in a venv of its own with tritonclient[grpc] (it needs protobuf < 7): Triton's client against offload-server.

python triton_script.py HOST:PORT FRAME.jpg FACES.jpg   → prints one JSON report
"""

from __future__ import annotations

import json
import queue
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def frame_input(data: bytes) -> triton.InferInput:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=np.object_))
    return tensor


def status_of(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except InferenceServerException as exc:
        return f"{exc.status()} {exc.message()}"
    return "OK"


def main() -> int:
    url, frame = sys.argv[1], Path(sys.argv[2]).read_bytes()
    client = triton.InferenceServerClient(url)
    report: dict[str, object] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("text-spotter"),
        "server": client.get_server_metadata(as_json=True),
        "metadata": client.get_model_metadata("text-spotter", as_json=True),
    }
    result = client.infer("text-spotter", [frame_input(frame)], request_id="one")
    report["texts"] = [t.decode() for t in result.as_numpy("texts")]
    report["text_boxes_shape"] = list(result.as_numpy("text_boxes").reshape(-1, 4, 2).shape)
    faces = client.infer("face-detector", [frame_input(Path(sys.argv[3]).read_bytes())])  # the second model
    report["face_boxes"] = faces.as_numpy("boxes").reshape(-1, 4, 2).tolist()
    report["unknown_model"] = status_of(lambda: client.infer("yolo9000", [frame_input(frame)]))
    report["bad_frame"] = status_of(lambda: client.infer("text-spotter", [frame_input(b"not a jpeg")]))

    answers: queue.Queue[tuple[str, str]] = queue.Queue()

    def on_answer(result: triton.InferResult | None, error: InferenceServerException | None) -> None:
        if error is not None:
            answers.put(("error", error.message()))
        else:
            answers.put((result.get_response().id, ",".join(t.decode() for t in result.as_numpy("texts"))))

    client.start_stream(callback=on_answer)
    for i, data in enumerate([frame, frame, b"not a jpeg", frame]):
        client.async_stream_infer("text-spotter", [frame_input(data)], request_id=f"s{i}")
    report["stream"] = sorted(answers.get(timeout=60) for _ in range(4))
    client.stop_stream()
    client.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
