"""`offload_server.ray_app:app`: offload.v1 on Ray Serve, for more than one machine behind one address.

Ray Serve's gRPC proxy serves `offload.v1.Offload` as it is, so the phone-side SDK does not change:
`Infer`, `InferStream` (a bidirectional stream, Ray >= 2.55) and `ListModels`. Each replica runs the
same `InferenceService` as `offload-server`: decode, pre/post-processing, models and the dynamic
batcher are shared code, and the statuses are the same. Ray handles replicas, restarts and
autoscaling; `deploy/ray/serve.yaml` is the config (`serve run deploy/ray/serve.yaml`).

Ray's gRPC port is plaintext: TLS and tokens end in front of it (an ingress or a load balancer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.grpc_util import RayServegRPCContext

from offload_core.proto import offload_pb2 as pb
from offload_server.config import Settings
from offload_server.errors import ServiceError
from offload_server.grpc_service import OffloadServicer
from offload_server.inference import InferenceService
from offload_server.metrics import Metrics

# What a Serve config passes to `add_OffloadServicer_to_server` for the proxy.
SERVICER_FUNCTION = "offload_core.proto.offload_pb2_grpc.add_OffloadServicer_to_server"


# Up to 32 requests at once per replica, as offload-server's queue: Serve's default of 5 would cap
# the dynamic batcher's batches and leave a GPU idle.
@serve.deployment(max_ongoing_requests=32)
class OffloadDeployment:
    def __init__(self, **settings: Any) -> None:
        """`settings`: any `Settings` field (models_dir, models, providers, ...); ports are Ray's."""
        self.service = InferenceService(Settings(**settings), Metrics())
        self.service.load()
        self.stream = OffloadServicer(self.service)  # its per-frame answers for streams

    async def Infer(self, request: pb.InferRequest, grpc_context: RayServegRPCContext) -> pb.InferResponse:  # noqa: N802
        try:
            return await self.service.infer(request)
        except ServiceError as exc:
            grpc_context.set_code(exc.code)
            grpc_context.set_details(exc.message)
            return pb.InferResponse()

    async def InferStream(self, requests: AsyncIterator[pb.InferRequest]) -> AsyncIterator[pb.InferResponse]:  # noqa: N802
        async for response in self.stream.InferStream(requests, None):
            yield response

    async def ListModels(self, request: pb.ListModelsRequest) -> pb.ListModelsResponse:  # noqa: N802
        return self.service.list_models()

    def check_health(self) -> None:
        """Serve restarts a replica whose models are not loaded (it calls this every few seconds)."""
        if not self.service.ready:
            raise RuntimeError("models not loaded")


app = OffloadDeployment.bind()  # type: ignore[attr-defined]  # @serve.deployment made it a Deployment
