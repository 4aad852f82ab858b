"""Reading `/metrics` in tests: the scrape token the tests configure and a parser of the output."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-0123456789abcdef"


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of one exposition, keyed by (name, sorted labels), through the client
    library's own parser (which refuses anything malformed)."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]
