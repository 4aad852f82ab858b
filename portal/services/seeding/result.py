"""What a seeding run reports, whichever seeder did it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeedResult:
    campaign_id: uuid.UUID
    method: str  # "batch" | "traditional"
    duration_ms: float
    rows: dict[str, int] = field(default_factory=dict)  # table name -> rows created

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())
