"""The Open Inference Protocol (KServe v2) on the gRPC port: the same service for KServe's and Triton's clients.

A request carries one encoded frame (JPEG, PNG or WebP) as the BYTES input `image`, shape [1]: in
`raw_input_contents` (a 4-byte little-endian length, then the bytes: what tritonclient sends) or in
`contents.bytes_contents`. The parameter `variant` picks a variant; any other goes to the model as a
parameter (none takes any yet, so it is refused, as on offload.v1). Every model answers the same
outputs, in `raw_output_contents`; a request that names outputs gets only those:

    boxes FP32 [n,4,2]  box_scores FP32 [n]                  what a detector found
    texts BYTES [m]     text_scores FP32 [m]  text_boxes FP32 [m,4,2]   what a spotter read
    labels BYTES [k]    label_scores FP32 [k]                what a classifier chose

Errors carry the statuses offload.v1 documents (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...);
on `ModelStreamInfer` a failed frame is answered with `error_message` and the stream goes on.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

import grpc
import numpy as np
from google.protobuf.message import Message

from offload_core.engine.spec import ModelSpec
from offload_core.proto import offload_pb2 as pb
from offload_server import __version__
from offload_server._proto import grpc_service_pb2 as oip
from offload_server.errors import ServiceError
from offload_server.grpc_service import Malformed, tolerant
from offload_server.inference import InferenceService, shown
from offload_server.streams import answer_concurrently

SERVICE = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
INPUT = "image"
# name → (datatype, shape with -1 for "any"), in the order answered.
OUTPUTS: dict[str, tuple[str, list[int]]] = {
    "boxes": ("FP32", [-1, 4, 2]),
    "box_scores": ("FP32", [-1]),
    "texts": ("BYTES", [-1]),
    "text_scores": ("FP32", [-1]),
    "text_boxes": ("FP32", [-1, 4, 2]),
    "labels": ("BYTES", [-1]),
    "label_scores": ("FP32", [-1]),
}

# numpy dtype names (as `Tensor.dtype` carries them) → the protocol's datatypes.
OIP_DATATYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "uint8": "UINT8", "int8": "INT8",
                 "int32": "INT32", "int64": "INT64", "bool": "BOOL"}  # fmt: skip


def bytes_elements(raw: bytes) -> list[bytes]:
    """The elements of a BYTES tensor's raw contents: each a 4-byte little-endian length, then the bytes."""
    out, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise ValueError(f"a BYTES element's 4-byte length is cut off at byte {at} of {len(raw)}")
        (size,) = struct.unpack_from("<I", raw, at)
        if at + 4 + size > len(raw):
            raise ValueError(f"a BYTES element claims {size} bytes; {len(raw) - at - 4} follow its length")
        out.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return out


def bytes_tensor(items: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(data)) + data for data in (s.encode() for s in items))


def quads(boxes: list[pb.Box]) -> np.ndarray:
    """[n, 4, 2] corner points (a box with other than four points is not a quadrilateral: left out)."""
    rows = [[(p.x, p.y) for p in b.points] for b in boxes if len(b.points) == 4]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4, 2)


def invalid(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


class OpenInferenceServicer:
    """`inference.GRPCInferenceService` over `InferenceService`: the same queue, batches and models as offload.v1."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service

    # -- requests and responses --------------------------------------------------------

    def frame(self, request: oip.ModelInferRequest) -> pb.InferRequest:
        """The offload.v1 request a protocol request stands for; raises `ServiceError` for what cannot be served."""
        self._served(request.model_name, request.model_version)
        if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
            names = [i.name for i in request.inputs]
            raise invalid(f"send one input named {INPUT!r} (BYTES, shape [1]: an encoded frame); got {shown(names)}")
        tensor = request.inputs[0]
        if tensor.datatype != "BYTES" or list(tensor.shape) != [1]:
            raise invalid(
                f"input {INPUT!r} must be BYTES with shape [1] (one encoded frame; send more frames as more "
                f"requests, or on ModelStreamInfer); got {shown(tensor.datatype)} {list(tensor.shape)}"
            )
        try:
            if request.raw_input_contents:
                elements = bytes_elements(request.raw_input_contents[0])
            else:
                elements = list(tensor.contents.bytes_contents)
        except ValueError as exc:
            raise invalid(f"input {INPUT!r}: {exc}") from None
        if len(elements) != 1:
            raise invalid(f"input {INPUT!r} has shape [1] but holds {len(elements)} elements")
        params = {}
        for key, value in request.parameters.items():
            which = value.WhichOneof("parameter_choice")
            params[key] = str(getattr(value, which)) if which else ""
        variant = params.pop("variant", "")
        unknown = [o.name for o in request.outputs if o.name not in OUTPUTS]
        if unknown:
            raise invalid(f"unknown output(s) {shown(unknown)}; the outputs are {list(OUTPUTS)}")
        return pb.InferRequest(
            model=request.model_name, variant=variant, params=params, encoded=pb.EncodedImage(data=elements[0])
        )

    def _served(self, model: str, version: str) -> ModelSpec:
        """The spec of a served model at `version` (empty: any); `ServiceError(NOT_FOUND)` otherwise."""
        spec = self.service.served(model)
        if version and version != spec.version:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND, f"model {model!r} has version {spec.version!r}, not {shown(version)}"
            )
        return spec

    @staticmethod
    def response(request: oip.ModelInferRequest, answer: pb.InferResponse) -> oip.ModelInferResponse:
        tensors: dict[str, tuple[np.ndarray | list[str], list[int]]] = {}
        boxes, texts = quads(list(answer.boxes)), [t for t in answer.texts if len(t.box.points) == 4]
        tensors["boxes"] = (boxes, list(boxes.shape))
        tensors["box_scores"] = (
            np.asarray([b.score for b in answer.boxes if len(b.points) == 4], np.float32),
            [len(boxes)],
        )
        tensors["texts"] = ([t.text for t in texts], [len(texts)])
        tensors["text_scores"] = (np.asarray([t.score for t in texts], np.float32), [len(texts)])
        text_boxes = quads([t.box for t in texts])
        tensors["text_boxes"] = (text_boxes, list(text_boxes.shape))
        tensors["labels"] = ([c.label for c in answer.classes], [len(answer.classes)])
        tensors["label_scores"] = (np.asarray([c.score for c in answer.classes], np.float32), [len(answer.classes)])
        wanted = [o.name for o in request.outputs] or list(OUTPUTS)
        out = oip.ModelInferResponse(model_name=answer.model, model_version=answer.model_version, id=request.id)
        out.parameters["variant"].string_param = answer.variant
        out.parameters["server_total_ms"].double_param = answer.timings.total_ms
        for name in wanted:
            data, shape = tensors[name]
            out.outputs.add(name=name, datatype=OUTPUTS[name][0], shape=shape)
            out.raw_output_contents.append(bytes_tensor(data) if isinstance(data, list) else data.tobytes())
        if not request.outputs:  # a task's own tensors (a mask, an embedding) follow, under their names
            for t in answer.tensors:
                out.outputs.add(name=t.name, datatype=OIP_DATATYPES.get(t.dtype, "BYTES"), shape=list(t.shape))
                out.raw_output_contents.append(t.data)
        return out

    # -- methods -----------------------------------------------------------------------

    async def ServerLive(self, request: object, context: grpc.aio.ServicerContext) -> oip.ServerLiveResponse:  # noqa: N802
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, request: object, context: grpc.aio.ServicerContext) -> oip.ServerReadyResponse:  # noqa: N802
        return oip.ServerReadyResponse(ready=self.service.ready)

    async def ModelReady(  # noqa: N802
        self, request: oip.ModelReadyRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> oip.ModelReadyResponse:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            raise AssertionError("unreachable: abort raises")
        try:
            self._served(request.name, request.version)
        except ServiceError:
            return oip.ModelReadyResponse(ready=False)  # not served (at that version): not ready, no error
        return oip.ModelReadyResponse(ready=self.service.ready and request.name not in self.service.broken)

    async def ServerMetadata(  # noqa: N802
        self, request: object, context: grpc.aio.ServicerContext
    ) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(name="offload-server", version=__version__, extensions=["model_streaming"])

    async def ModelMetadata(  # noqa: N802
        self, request: oip.ModelMetadataRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> oip.ModelMetadataResponse:
        try:
            if isinstance(request, Malformed):
                raise invalid(request.message)
            spec = self._served(request.name, request.version)
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises
        out = oip.ModelMetadataResponse(name=request.name, versions=[spec.version], platform="onnxruntime_onnx")
        out.inputs.add(name=INPUT, datatype="BYTES", shape=[1])
        for name, (datatype, shape) in OUTPUTS.items():
            out.outputs.add(name=name, datatype=datatype, shape=shape)
        return out

    async def _infer(self, request: oip.ModelInferRequest, time_left_s: float | None) -> oip.ModelInferResponse:
        answer = await self.service.infer(self.frame(request), time_left_s)
        return self.response(request, answer)

    async def ModelInfer(  # noqa: N802
        self, request: oip.ModelInferRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> oip.ModelInferResponse:
        try:
            if isinstance(request, Malformed):
                raise invalid(request.message)
            return await self._infer(request, context.time_remaining())
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    async def ModelStreamInfer(  # noqa: N802
        self, requests: AsyncIterator[oip.ModelInferRequest | Malformed], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[oip.ModelStreamInferResponse]:
        async for response in answer_concurrently(requests, self._stream_answer):
            yield response

    async def _stream_answer(self, request: oip.ModelInferRequest | Malformed) -> oip.ModelStreamInferResponse:
        """A failed frame is answered with its error (and the request's id); the stream goes on."""
        try:
            if isinstance(request, Malformed):
                raise invalid(request.message)
            return oip.ModelStreamInferResponse(infer_response=await self._infer(request, None))
        except ServiceError as exc:
            failed = oip.ModelInferResponse(
                id=getattr(request, "id", ""), model_name=getattr(request, "model_name", "")
            )
            return oip.ModelStreamInferResponse(error_message=f"{exc.code.name}: {exc.message}", infer_response=failed)


def add_to_server(servicer: OpenInferenceServicer, server: grpc.aio.Server) -> None:
    """Register `inference.GRPCInferenceService` with tolerant deserializers (bad bytes → INVALID_ARGUMENT)."""

    def unary(method: Callable[..., object], message: type[Message], reply: type[Message]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(method, tolerant(message), reply.SerializeToString)

    handlers = {
        "ServerLive": unary(servicer.ServerLive, oip.ServerLiveRequest, oip.ServerLiveResponse),
        "ServerReady": unary(servicer.ServerReady, oip.ServerReadyRequest, oip.ServerReadyResponse),
        "ModelReady": unary(servicer.ModelReady, oip.ModelReadyRequest, oip.ModelReadyResponse),
        "ServerMetadata": unary(servicer.ServerMetadata, oip.ServerMetadataRequest, oip.ServerMetadataResponse),
        "ModelMetadata": unary(servicer.ModelMetadata, oip.ModelMetadataRequest, oip.ModelMetadataResponse),
        "ModelInfer": unary(servicer.ModelInfer, oip.ModelInferRequest, oip.ModelInferResponse),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
            servicer.ModelStreamInfer,
            tolerant(oip.ModelInferRequest),
            oip.ModelStreamInferResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
