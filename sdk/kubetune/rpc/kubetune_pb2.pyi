from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParamValue(_message.Message):
    __slots__ = ("number", "integer", "text")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    number: float
    integer: int
    text: str
    def __init__(self, number: _Optional[float] = ..., integer: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class TrialObservation(_message.Message):
    __slots__ = ("name", "params", "state", "value", "metrics", "prior")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.MessageMap[str, ParamValue]
    state: str
    value: float
    metrics: _containers.ScalarMap[str, float]
    prior: bool
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, ParamValue]] = ..., state: _Optional[str] = ..., value: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., prior: _Optional[bool] = ...) -> None: ...

class GetSuggestionsRequest(_message.Message):
    __slots__ = ("spec_json", "trials", "count")
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    trials: _containers.RepeatedCompositeFieldContainer[TrialObservation]
    count: int
    def __init__(self, spec_json: _Optional[str] = ..., trials: _Optional[_Iterable[_Union[TrialObservation, _Mapping]]] = ..., count: _Optional[int] = ...) -> None: ...

class Suggestion(_message.Message):
    __slots__ = ("params",)
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: _containers.MessageMap[str, ParamValue]
    def __init__(self, params: _Optional[_Mapping[str, ParamValue]] = ...) -> None: ...

class GetSuggestionsResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[Suggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[Suggestion, _Mapping]]] = ...) -> None: ...

class ValidateSpecRequest(_message.Message):
    __slots__ = ("spec_json",)
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    def __init__(self, spec_json: _Optional[str] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("path", "message")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    path: str
    message: str
    def __init__(self, path: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ValidateSpecResponse(_message.Message):
    __slots__ = ("valid", "errors")
    VALID_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    errors: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, valid: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("trial", "token", "step", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    trial: str
    token: bytes
    step: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, trial: _Optional[str] = ..., token: _Optional[bytes] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("should_stop", "reason")
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    should_stop: bool
    reason: str
    def __init__(self, should_stop: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportPoint(_message.Message):
    __slots__ = ("step", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    step: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ReportBatchRequest(_message.Message):
    __slots__ = ("trial", "token", "points")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    trial: str
    token: bytes
    points: _containers.RepeatedCompositeFieldContainer[ReportPoint]
    def __init__(self, trial: _Optional[str] = ..., token: _Optional[bytes] = ..., points: _Optional[_Iterable[_Union[ReportPoint, _Mapping]]] = ...) -> None: ...

class PointResult(_message.Message):
    __slots__ = ("step", "result", "message")
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    step: int
    result: str
    message: str
    def __init__(self, step: _Optional[int] = ..., result: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReportBatchResponse(_message.Message):
    __slots__ = ("results", "should_stop", "reason", "verdict_step")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERDICT_STEP_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PointResult]
    should_stop: bool
    reason: str
    verdict_step: int
    def __init__(self, results: _Optional[_Iterable[_Union[PointResult, _Mapping]]] = ..., should_stop: _Optional[bool] = ..., reason: _Optional[str] = ..., verdict_step: _Optional[int] = ...) -> None: ...
