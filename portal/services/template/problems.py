"""Every problem of a template file, found in one run and reported grouped by rule.

An operator converting an export from another system fixes a file in as few rounds as
possible: all problems are collected (never "first error wins"), grouped by the rule they
break, with a count and the first few records that break it, e.g.

    schticks[*].bonus: must be true or false, got null — 635 records: schtick-0001, ...

Memory stays bounded however broken the file is: a rule keeps its count and at most
`EXAMPLES` examples, and at most `MAX_RULES` rules are kept (the rest are only counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.services.template.errors import TemplateError

EXAMPLES = 5
MAX_RULES = 60


@dataclass
class _Rule:
    noun: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


class Problems:
    """The problems found so far, by rule (insertion order: the order they were met)."""

    def __init__(self) -> None:
        self.rules: dict[str, _Rule] = {}
        self.total = 0
        self.unlisted = 0  # problems of rules past MAX_RULES

    def __bool__(self) -> bool:
        return self.total > 0

    def add(
        self, rule: str, where: str | None = None, detail: str | None = None, noun: str = "record"
    ) -> None:
        """Record one problem: `rule` says what is wrong where (a path with `[*]` for "any
        record"), `where` names the record (its ref), `detail` the particular value."""
        self.total += 1
        entry = self.rules.get(rule)
        if entry is None:
            if len(self.rules) >= MAX_RULES:
                self.unlisted += 1
                return
            entry = self.rules[rule] = _Rule(noun)
        entry.count += 1
        if len(entry.examples) < EXAMPLES:
            example = " ".join(part for part in (where, f"({detail})" if detail else None) if part)
            entry.examples.append(example)

    def lines(self) -> list[str]:
        """One line per rule, in the order the rules were first broken."""
        out = []
        for rule, entry in self.rules.items():
            examples = [e for e in entry.examples if e]
            if not examples:
                out.append(rule + (f" — {entry.count} times" if entry.count > 1 else ""))
                continue
            noun = entry.noun if entry.count == 1 else f"{entry.noun}s"
            more = ", …" if entry.count > len(examples) else ""
            if entry.count == 1 and examples[0].startswith("("):
                out.append(f"{rule} {examples[0]}")
            else:
                out.append(f"{rule} — {entry.count} {noun}: {', '.join(examples)}{more}")
        if self.unlisted:
            out.append(f"… and {self.unlisted} more problem(s) of other kinds")
        return out

    def error(self, source: str) -> TemplateProblems:
        return TemplateProblems(source, self.total, self.lines())


class TemplateProblems(TemplateError):
    """A template with problems: `lines` lists them by rule; nothing has been written."""

    def __init__(self, source: str, total: int, lines: list[str]) -> None:
        self.source = source
        self.total = total
        self.lines = lines
        kinds = len(lines)
        head = (
            f"{source}: {total} problem{'s' if total != 1 else ''}"
            + (f" of {kinds} kinds" if kinds > 1 else "")
            + "; nothing was written"
        )
        super().__init__(head + ":\n" + "\n".join(f"  {line}" for line in lines))
