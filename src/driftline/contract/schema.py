"""The input contract as a pydantic model, used to generate its JSON Schema.

The worker decodes records with the faster hand-written
:func:`driftline.contract.decode.decode_event`; a property test checks that the
two agree on which records are valid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Union

from driftline.contract.event import MAX_EVENT_MS
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

__all__ = ["InferenceRecord", "json_schema"]

Scalar = Union[StrictInt, StrictFloat, StrictBool, StrictStr, None]
Output = Union[StrictInt, StrictFloat, StrictBool, StrictStr, None]


class InferenceRecord(BaseModel):
    """One prediction (or one feature vector) of a model, as a JSON object in a Kafka record value."""

    model_config = ConfigDict(extra="allow", title="driftline inference event")

    model: Annotated[StrictStr, Field(min_length=1, max_length=256, description="Model name; the producer should also use it as the record key.")]
    model_version: Annotated[StrictStr | None, Field(min_length=1, max_length=256, description="Model version; absent or null means 'unversioned'.")] = None
    event_id: Annotated[StrictStr | None, Field(description="Id of the prediction, used to join ground-truth labels.")] = None
    timestamp: Annotated[Union[Annotated[StrictInt, Field(ge=0, le=MAX_EVENT_MS)], Annotated[StrictFloat, Field(ge=0, le=MAX_EVENT_MS)],
                               datetime, None], Field(
        description="Event time: epoch milliseconds or an RFC 3339 date-time with offset, from 1970 to 9999; absent means "
                    "the Kafka record timestamp.")] = None
    features: Annotated[dict[str, Scalar] | None, Field(
        description="Feature name → value. Numbers are numeric features, strings and booleans categorical, null a missing value.")] = None
    prediction: Annotated[Union[StrictInt, StrictFloat, StrictStr, StrictBool, dict[str, Output], None], Field(
        description="The model output: a number, a string, or an object of named outputs.")] = None

    @model_validator(mode="after")
    def _payload(self) -> "InferenceRecord":
        if self.features is None and self.prediction is None:
            raise ValueError("at least one of 'features' and 'prediction' is required")
        if isinstance(self.prediction, dict) and not self.prediction:
            raise ValueError("'prediction' must not be an empty object")
        return self


def json_schema() -> dict[str, object]:
    schema = InferenceRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/driftline/driftline/docs/inference-event.schema.json"
    schema["anyOf"] = [{"required": ["features"]}, {"required": ["prediction"]}]
    return schema
