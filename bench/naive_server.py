"""The two baselines people write first: a FastAPI endpoint per payload style, same model, same machine.

`POST /b64_jpeg` takes {"image_b64": "..."}: a JPEG in base64 inside JSON.
`POST /json_tensor` takes {"instances": [[[[...]]]], "height": H, "width": W}: the pre-processed
tensor as a JSON array, as KServe v1 and many tutorials do. Both run the PP-OCR detector (at 640,
or the variant given) with every core and answer the boxes as JSON. Synchronous handlers, one
uvicorn worker: the tutorial way.

    python -m bench.naive_server [fp32-160]   # prints "naive-server ready http=http://127.0.0.1:PORT"
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI

from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.image import decode_image
from offload_core.engine.tasks.text_detection import TextDetection
from offload_core.types import Box


def boxes_json(boxes: list[Box]) -> dict[str, Any]:
    return {"boxes": [{"points": b.points, "score": b.score} for b in boxes]}


def create_app(detector: TextDetection) -> FastAPI:
    app = FastAPI(title="naive baselines")

    @app.post("/b64_jpeg")
    def b64_jpeg(body: dict[str, Any]) -> dict[str, Any]:
        image = decode_image(base64.b64decode(body["image_b64"]))
        prediction, _ = detector.run(image)
        return boxes_json(prediction.boxes)

    @app.post("/json_tensor")
    def json_tensor(body: dict[str, Any]) -> dict[str, Any]:
        tensor = np.asarray(body["instances"], dtype=np.float32)
        prob_map, _ = detector.model(tensor)
        return boxes_json(detector.postprocess(prob_map, int(body["height"]), int(body["width"])))

    return app


async def serve(variant: str) -> None:
    task = ModelRepository().load("text-detector", variant, SessionConfig(intra_op_threads=0))
    assert isinstance(task, TextDetection)
    task.warmup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(task), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    print(f"naive-server ready http=http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await serving


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "fp32-640"))
    sys.exit(0)
