"""The alert policy's memory to and from JSON, so sequences, episodes and firing levels survive a restart.

Without it a restarted daemon would number messages from 1 again (and the journal, which keys messages by
identity and sequence, would take them for repeats) and would re-announce every alert still firing. Only the
memory's own types are accepted when decoding: the file is data, never code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from daemon.core.alerts import AlertIdentity, AlertKind
from daemon.core.policy_memory import Crossing, Figures, Level, Notice, PolicyMemory, Track

_DATACLASSES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (PolicyMemory, Track, Crossing, Figures, Notice, AlertIdentity)
}
_ENUMS: dict[str, type[enum.Enum]] = {cls.__name__: cls for cls in (Level, AlertKind)}


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **encoded}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__enum__" in value:
            return _ENUMS[value["__enum__"]](value["value"])
        if "__type__" in value:
            cls = _DATACLASSES[value["__type__"]]
            return cls(**{k: _decode(v) for k, v in value.items() if k != "__type__"})
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def memory_to_json(memory: PolicyMemory) -> str:
    return json.dumps(_encode(memory), sort_keys=True, allow_nan=False)


def memory_from_json(text: str) -> PolicyMemory:
    memory = _decode(json.loads(text))
    if not isinstance(memory, PolicyMemory):
        raise ValueError("not a policy memory")
    return memory
