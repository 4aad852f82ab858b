"""`flask --app app ...` commands, one module per command group; each module exposes `cli`.

`create_app` registers them by module path (`portal.CLI_MODULES`) and imports a module only
when its command runs, so the web and worker processes never load them.
"""
