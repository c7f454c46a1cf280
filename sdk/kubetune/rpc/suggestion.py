"""SuggestionService: suggestions and spec validation over gRPC, stateless per request.

Served by `kubetune-suggestion` (own Deployment), in-process by the operator, and called by
`SuggestionClient`, whose `suggest` plugs into `kubetune.engine.decide`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import grpc
from pydantic import ValidationError

from ..search import Observation, Params, create_suggester
from ..spec import FieldError, SpecError, TuningJobSpec
from ..spec._errors import field_errors
from . import kubetune_pb2 as pb
from . import kubetune_pb2_grpc as pb_grpc
from ._convert import from_proto_params, to_proto_params
from .limits import MAX_SUGGESTIONS, SUGGESTION_MESSAGE_BYTES, suggestion_cap


def parse_spec(spec_json: str) -> TuningJobSpec:
    """The `.spec` of a TuningJob from JSON; `SpecError` with `spec.`-prefixed paths."""
    try:
        data = json.loads(spec_json)
    except json.JSONDecodeError as exc:
        raise SpecError([FieldError("spec", f"not valid JSON: {exc.msg}")]) from None
    try:
        return TuningJobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, ("spec",), TuningJobSpec)) from None


class SuggestionServicer(pb_grpc.SuggestionServiceServicer):
    """Rebuilds the suggester from each request; holds no state."""

    def GetSuggestions(
        self, request: pb.GetSuggestionsRequest, context: Any
    ) -> pb.GetSuggestionsResponse:
        try:
            spec = parse_spec(request.spec_json)
        except SpecError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        own = sum(1 for t in request.trials if not t.prior)  # warm-start points are no trials
        cap = suggestion_cap(spec.max_trials, spec.parallelism, own)
        if not 0 <= request.count <= cap:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"count: must be between 0 and {cap}, the job's free slots and remaining budget "
                f"(parallelism {spec.parallelism}, maxTrials {spec.max_trials}, "
                f"{own} trials; at most {MAX_SUGGESTIONS} a call) "
                f"(got {request.count})",
            )
        history = []
        for i, t in enumerate(request.trials):
            value = t.value if t.HasField("value") else None
            state: Any = t.state or "succeeded"
            params = from_proto_params(t.params)
            missing = sorted(set(spec.parameter_names) - set(params))
            if missing:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"trials[{i}].params: missing {missing} (not from this search space)",
                )
            try:
                metrics = {k: v for k, v in t.metrics.items() if math.isfinite(v)}
                history.append(Observation(params, value, state, metrics, prior=t.prior))
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"trials[{i}].{exc}")
        response = pb.GetSuggestionsResponse()
        for params in create_suggester(spec).suggest(history, request.count):
            to_proto_params(params, response.suggestions.add().params)
        return response

    def ValidateSpec(
        self, request: pb.ValidateSpecRequest, context: Any
    ) -> pb.ValidateSpecResponse:
        try:
            parse_spec(request.spec_json)
        except SpecError as exc:
            errors = [pb.FieldViolation(path=e.path, message=e.message) for e in exc.errors]
            return pb.ValidateSpecResponse(valid=False, errors=errors)
        return pb.ValidateSpecResponse(valid=True)


class SuggestionClient:
    """Client of a SuggestionService; `suggest` matches `kubetune.engine.SuggestFn`."""

    def __init__(self, address: str, timeout: float = 30.0, token: str | None = None) -> None:
        size = SUGGESTION_MESSAGE_BYTES
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
            ],
        )
        self.stub = pb_grpc.SuggestionServiceStub(self.channel)
        self.timeout = timeout
        self.metadata = [("authorization", f"Bearer {token}")] if token else None

    def suggest(
        self, spec: TuningJobSpec, history: Sequence[Observation], count: int
    ) -> list[Params]:
        request = pb.GetSuggestionsRequest(
            spec_json=spec.model_dump_json(by_alias=True), count=count
        )
        for o in history:
            trial = request.trials.add(state=o.state, prior=o.prior)
            to_proto_params(o.params, trial.params)
            if o.value is not None:
                trial.value = o.value
            for name, value in o.metrics.items():
                trial.metrics[name] = value
        response = self.stub.GetSuggestions(request, timeout=self.timeout, metadata=self.metadata)
        return [from_proto_params(s.params) for s in response.suggestions]

    def validate(self, spec: dict[str, Any]) -> list[FieldError]:
        response = self.stub.ValidateSpec(
            pb.ValidateSpecRequest(spec_json=json.dumps(spec)),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return [FieldError(e.path, e.message) for e in response.errors]

    def close(self) -> None:
        self.channel.close()
