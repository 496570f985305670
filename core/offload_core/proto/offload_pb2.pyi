from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodedImage(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: str
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[str] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("data", "shape", "dtype")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    def __init__(self, data: _Optional[bytes] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("model", "frame_id", "encoded", "raw", "params", "deadline_ms", "variant", "regions", "frame_width", "frame_height", "late_margin_ms")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LATE_MARGIN_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    frame_id: int
    encoded: EncodedImage
    raw: RawImage
    params: _containers.ScalarMap[str, str]
    deadline_ms: int
    variant: str
    regions: _containers.RepeatedCompositeFieldContainer[Region]
    frame_width: int
    frame_height: int
    late_margin_ms: int
    def __init__(self, model: _Optional[str] = ..., frame_id: _Optional[int] = ..., encoded: _Optional[_Union[EncodedImage, _Mapping]] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ..., params: _Optional[_Mapping[str, str]] = ..., deadline_ms: _Optional[int] = ..., variant: _Optional[str] = ..., regions: _Optional[_Iterable[_Union[Region, _Mapping]]] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., late_margin_ms: _Optional[int] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("image", "x", "y", "width", "height", "stage")
    class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FIND: _ClassVar[Region.Stage]
        READ: _ClassVar[Region.Stage]
    FIND: Region.Stage
    READ: Region.Stage
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    image: EncodedImage
    x: int
    y: int
    width: int
    height: int
    stage: Region.Stage
    def __init__(self, image: _Optional[_Union[EncodedImage, _Mapping]] = ..., x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., stage: _Optional[_Union[Region.Stage, str]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("points", "score", "label")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    score: float
    label: str
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., score: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class TextItem(_message.Message):
    __slots__ = ("box", "text", "score")
    BOX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    box: Box
    text: str
    score: float
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ServerTimings(_message.Message):
    __slots__ = ("decode_ms", "queue_ms", "inference_ms", "postprocess_ms", "total_ms", "batch_size")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    queue_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float
    batch_size: int
    def __init__(self, decode_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., postprocess_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("frame_id", "model", "model_version", "variant", "boxes", "texts", "classes", "timings", "error", "tensors", "accepts", "load")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    model: str
    model_version: str
    variant: str
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    texts: _containers.RepeatedCompositeFieldContainer[TextItem]
    classes: _containers.RepeatedCompositeFieldContainer[ClassScore]
    timings: ServerTimings
    error: FrameError
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    accepts: _containers.RepeatedScalarFieldContainer[str]
    load: ServerLoad
    def __init__(self, frame_id: _Optional[int] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ..., variant: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., texts: _Optional[_Iterable[_Union[TextItem, _Mapping]]] = ..., classes: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., timings: _Optional[_Union[ServerTimings, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., accepts: _Optional[_Iterable[str]] = ..., load: _Optional[_Union[ServerLoad, _Mapping]] = ...) -> None: ...

class ServerLoad(_message.Message):
    __slots__ = ("predicted_wait_ms", "queue_length", "service_ms")
    PREDICTED_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SERVICE_MS_FIELD_NUMBER: _ClassVar[int]
    predicted_wait_ms: float
    queue_length: int
    service_ms: float
    def __init__(self, predicted_wait_ms: _Optional[float] = ..., queue_length: _Optional[int] = ..., service_ms: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VariantInfo(_message.Message):
    __slots__ = ("name", "file", "sha256", "size_bytes", "input_size", "precision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    sha256: str
    size_bytes: int
    input_size: int
    precision: str
    def __init__(self, name: _Optional[str] = ..., file: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., input_size: _Optional[int] = ..., precision: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "task", "version", "variants", "default_variant", "capabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VARIANT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: str
    version: str
    variants: _containers.RepeatedCompositeFieldContainer[VariantInfo]
    default_variant: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., task: _Optional[str] = ..., version: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[VariantInfo, _Mapping]]] = ..., default_variant: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
