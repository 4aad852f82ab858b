"""What every seeder promises: the `Seeder` protocol, its result and its one error type.

Whichever seeder runs (batch for the pool and the API, traditional as the reference and
fallback), callers depend only on this module, so they can switch seeders without importing
another's internals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from portal.models import Campaign


class SeedingError(RuntimeError):
    """Seeding could not complete; everything was rolled back. The message names the record."""


@dataclass(frozen=True)
class SeedResult:
    campaign_id: uuid.UUID
    method: str  # "batch" | "traditional"
    duration_ms: float
    rows: dict[str, int] = field(default_factory=dict)  # table name -> rows created

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class Seeder(Protocol):
    """Copies the master template into an empty campaign and commits, or rolls back and raises."""

    def seed(self, target: Campaign, template: Campaign) -> SeedResult:
        """Fill `target` (an empty, flushed shell) with a copy of `template`; commit both."""
        ...
