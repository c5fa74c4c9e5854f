"""What a server serves and how: validated with pydantic, from the command line or
a YAML file of model URIs::

    host: 127.0.0.1
    port: 8080
    poll_seconds: 5            # how often aliases are checked for a hot swap (0: never)
    max_body_bytes: 16777216
    models:
      - uri: models:/rides-pricing@production
        batching: {max_batch_size: 32, max_wait_ms: 2}
        log_sample_rate: 0.01
      - uri: models:/fraud/7
        name: fraud-v7         # the name in URLs (default: the registered model's)
        native: true           # the native flavor even when an ONNX export exists

Errors name the field, what was expected and what was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shipyard.errors import InvalidArgumentError
from shipyard.validation import read_yaml, settings_errors

__all__ = ["BatchingConfig", "ModelConfig", "ServeConfig", "load_config", "parse_config"]

_STRICT = ConfigDict(extra="forbid")


class BatchingConfig(BaseModel):
    """Adaptive micro-batching: requests that arrive while the model is busy, or
    within ``max_wait_ms`` of the first, share one model call of up to
    ``max_batch_size`` rows."""

    model_config = _STRICT
    max_batch_size: int = Field(32, ge=1, le=65536)
    max_wait_ms: float = Field(2.0, ge=0, le=10_000)


class ModelConfig(BaseModel):
    """One served model."""

    model_config = _STRICT
    uri: str = Field(min_length=1)
    name: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    native: bool = False
    device: str = Field("cpu", pattern=r"^(cpu|cuda)$")
    batching: BatchingConfig | None = None
    log_sample_rate: float = Field(0.0, ge=0.0, le=1.0)
    drift_window: int = Field(10_000, ge=0)
    #: ONNX Runtime intra-op threads (default: the cores this process may use,
    #: divided among the workers).
    threads: int | None = Field(None, ge=1, le=1024)


class ServeConfig(BaseModel):
    """A whole server."""

    model_config = _STRICT
    models: list[ModelConfig] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    poll_seconds: float = Field(5.0, ge=0)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [m.name for m in self.models if m.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; {dupes} given twice")
        return self


def parse_config(data: Any, *, source: str = "serve config") -> ServeConfig:
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"{source}: expected a mapping with 'models' (a list of {{uri: ...}}), got "
            f"{type(data).__name__}"
        )
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as e:
        raise settings_errors(e, source) from None


def load_config(path: str | Path) -> ServeConfig:
    """Read and validate a YAML (or JSON) server config."""
    return parse_config(read_yaml(path, "serve config"), source=str(path))
