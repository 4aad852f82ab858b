"""The master template: generate, import, export, stats (docs/template-format.md).

Every new campaign is a copy of the master template, so this package is where its shape is
defined (generator), checked (validation), written (writer), exchanged with operators as JSON
(exchange; format in docs/template-format.md) and described (stats).
"""

from portal.services.template.errors import TemplateError
from portal.services.template.exchange import (
    dump_template,
    export_template,
    import_template,
    load_template_file,
    parse_template,
)
from portal.services.template.generator import build_template_document, generate_template
from portal.services.template.stats import template_stats
from portal.services.template.validation import validate_template
from portal.services.template.writer import TEMPLATE_OWNER_EMAIL, template_owner

__all__ = [
    "TEMPLATE_OWNER_EMAIL",
    "TemplateError",
    "build_template_document",
    "dump_template",
    "export_template",
    "generate_template",
    "import_template",
    "load_template_file",
    "parse_template",
    "template_owner",
    "template_stats",
    "validate_template",
]
