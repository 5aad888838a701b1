"""``.. typer-cli:: module:app`` — the reference of a Typer command tree, generated at build time.

sphinx-click cannot read it: Typer (>= 0.16) builds its commands on its own vendored copy of click,
so ``typer.main.get_command(app)`` is not a ``click.Command``. This directive walks the same tree
(name, help, usage, arguments and options with their defaults) and writes one section per command.
Subcommands are resolved as the command line resolves them (``resolve_command``), so lazily built
commands (``conjugacy reproduce fcn``) are documented with their real options, not placeholders.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    import typer

    return typer.main.get_command(getattr(importlib.import_module(module), attr))


def _param_line(param: Any, ctx: Any) -> list[str]:
    record = param.get_help_record(ctx)
    if record is None:  # an argument: no help record in click
        name = param.human_readable_name
        help_text = getattr(param, "help", None) or ""
        return [f"``{name}``", f"   {help_text or '(argument)'}", ""]
    opts, help_text = record
    return [f"``{opts}``", f"   {help_text or ' '}", ""]


def _subcommand(group: Any, ctx: Any, name: str) -> Any:
    """The command ``name`` of ``group`` as the command line runs it: through
    ``resolve_command``, which a lazy group (``conjugacy reproduce``: placeholders listed from
    their help alone) overrides to build the real command with its options."""
    _, child, _ = group.resolve_command(ctx, [name])
    return child


def _command_lines(cmd: Any, path: list[str], level_chars: str) -> list[str]:
    ctx = type(cmd).context_class(cmd, info_name=path[-1])
    title = " ".join(path)
    lines = [title, level_chars[0] * len(title), ""]
    lines += [(cmd.help or "").strip().replace("\b\n", ""), ""]
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    lines += ["::", "", f"   {title} {pieces}", ""]
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    for p in params:
        lines += _param_line(p, ctx)
    names = cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []
    for name in names:
        child = _subcommand(cmd, ctx, name)
        if child is None or getattr(child, "hidden", False):
            continue
        lines += _command_lines(child, [*path, name], level_chars[1:] or level_chars)
    return lines


class TyperCliDirective(SphinxDirective):
    """Render the command tree of a Typer app (``module:attribute``) as sections."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        cmd = _load(self.arguments[0])
        lines = _command_lines(cmd, [cmd.name or "conjugacy"], "-~^\"'")
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(lines, source="typer-cli"), self.content_offset,
                                container, match_titles=True)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("typer-cli", TyperCliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
