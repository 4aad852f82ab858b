"""The one error type of the template package."""

from __future__ import annotations


class TemplateError(ValueError):
    """The template cannot be generated, imported or read as asked.

    The message points at the problem (for an import: the JSON path of the offending value), so
    an operator can fix the file without reading code; nothing has been written when it is raised.
    """
