"""What the tests share: fixtures' building blocks, process harnesses, helpers (see conftest.py)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
