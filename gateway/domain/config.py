"""Each use case takes a small config of its own, picked from the settings by field name, so a rule
depends on the few numbers it uses, not on every setting the service has."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

C = TypeVar("C")


def pick(cls: type[C], settings: Any, **given: Any) -> C:
    """An instance of the dataclass `cls` from the attributes of `settings` with the same names."""
    values = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name not in given  # type: ignore[arg-type]
              and hasattr(settings, f.name)}
    return cls(**values, **given)
