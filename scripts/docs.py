# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate the collection's reference docs, and check that they are up to date.

One source of truth per role: ``roles/<role>/meta/argument_specs.yml``. From it (and from
the modules' and filters' DOCUMENTATION) this writes:

- ``docs/reference/``: one page per module, filter and role, and an index, rendered by
  ``antsibull-docs collection`` (simplified RST, which code hosting sites render);
- the variable tables of each ``roles/<role>/README.md``, between the markers
  ``<!-- BEGIN generated variables -->`` and ``<!-- END generated variables -->``; the
  prose around them stays hand-written.

It also checks that ``defaults/main.yml`` agrees with the spec: every default there is
a documented option, and every option the spec gives a default has that value.

Usage (from the repository root, with the Makefile's environment):
  python scripts/docs.py            write the docs (``make docs``)
  python scripts/docs.py --check    fail, naming each stale file, when they differ (``make lint``)
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from antsibull_docs_parser import dom
from antsibull_docs_parser.format import Formatter, LinkProvider, format_paragraphs
from antsibull_docs_parser.parser import Context, parse

COLLECTION = "mtls.rollout"
REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path("docs/reference")
BEGIN = "<!-- BEGIN generated variables: edit meta/argument_specs.yml, then run `make docs` -->"
END = "<!-- END generated variables -->"
REGENERATE = "make docs"
# A default longer than this is left to defaults/main.yml instead of the table.
MAX_DEFAULT = 60


class ReadmeFormatter(Formatter):
    """Ansible's documentation markup as Markdown that still reads well as plain text."""

    @staticmethod
    def _code(text: str) -> str:
        fence = "``" if "`" in text else "`"
        pad = " " if fence == "``" else ""
        return f"{fence}{pad}{text}{pad}{fence}"

    @staticmethod
    def _text(text: str) -> str:
        return re.sub(r"([\\*<>\[\]])", r"\\\1", text)

    def format_error(self, part: dom.ErrorPart) -> str:
        raise ValueError(part.message)

    def format_bold(self, part: dom.BoldPart) -> str:
        return f"**{self._text(part.text)}**"

    def format_code(self, part: dom.CodePart) -> str:
        return self._code(part.text)

    def format_horizontal_line(self, part: dom.HorizontalLinePart) -> str:
        return " "

    def format_italic(self, part: dom.ItalicPart) -> str:
        return f"*{self._text(part.text)}*"

    def format_link(self, part: dom.LinkPart) -> str:
        return f"[{self._text(part.text)}]({part.url})"

    def format_module(self, part: dom.ModulePart, url: str | None) -> str:
        return f"[{self._code(part.fqcn)}]({url})" if url else self._code(part.fqcn)

    def format_rst_ref(self, part: dom.RSTRefPart) -> str:
        return self._text(part.text)

    def format_url(self, part: dom.URLPart) -> str:
        return f"<{part.url}>"

    def format_text(self, part: dom.TextPart) -> str:
        return self._text(part.text)

    def format_env_variable(self, part: dom.EnvVariablePart) -> str:
        return self._code(part.name)

    def format_option_name(self, part: dom.OptionNamePart, url: str | None) -> str:
        text = part.name if part.value is None else f"{part.name}={part.value}"
        return self._code(text)

    def format_option_value(self, part: dom.OptionValuePart) -> str:
        return self._code(part.value)

    def format_plugin(self, part: dom.PluginPart, url: str | None) -> str:
        return f"[{self._code(part.plugin.fqcn)}]({url})" if url else self._code(part.plugin.fqcn)

    def format_return_value(self, part: dom.ReturnValuePart, url: str | None) -> str:
        return self.format_option_name(part, url)  # type: ignore[arg-type]


class ReferenceLinks(LinkProvider):
    """Links from a role README to this collection's pages in docs/reference/."""

    def plugin_link(self, plugin: dom.PluginIdentifier) -> str | None:
        if not plugin.fqcn.startswith(COLLECTION + "."):
            return None
        name = plugin.fqcn[len(COLLECTION) + 1 :]
        return f"../../{REFERENCE.as_posix()}/{name}_{plugin.type}.rst"


def markdown(text: str | list[str], role: str, where: str) -> str:
    """One table cell: the paragraphs of a description, joined into one line."""
    paragraphs = [text] if isinstance(text, str) else list(text)
    context = Context(
        current_plugin=dom.PluginIdentifier(fqcn=f"{COLLECTION}.{role}", type="role"),
        role_entrypoint="main",
    )
    try:
        parsed = parse(paragraphs, context, errors="exception")
    except ValueError as error:
        raise SystemExit(f"docs: roles/{role}/meta/argument_specs.yml: {where}: {error}") from None
    cell = format_paragraphs(
        parsed,
        formatter=ReadmeFormatter(),
        link_provider=ReferenceLinks(),
        par_start="",
        par_end="",
        par_sep=" ",
        par_empty="",
    )
    return cell.replace("|", "\\|").replace("\n", " ")


def flow(value: object) -> str:
    """A default value in YAML flow style, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def default_cell(spec: dict) -> str:
    if spec.get("required"):
        return "required"
    if "default" not in spec:
        return ""
    value = spec["default"]
    text = flow(value)
    if "'" in text:
        text = json.dumps(value)  # "{{ x }}/y" reads as Ansible users write it
    if len(text) > MAX_DEFAULT:
        return "see `defaults/main.yml`"
    return ReadmeFormatter._code(text).replace("|", "\\|")


def type_cell(spec: dict) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and "elements" in spec:
        kind = f"list of {spec['elements']}"
    if spec.get("choices"):
        kind += ": " + ", ".join(ReadmeFormatter._code(flow(c)) for c in spec["choices"])
    return kind.replace("|", "\\|")


def tables(options: dict, role: str, parent: str = "", level: int = 2) -> list[str]:
    """Markdown tables for ``options``, then one table per option that has suboptions.

    ``parent`` names the option these are the keys of (``nginx_mtls_sites[].locations[]``).
    """
    lines: list[str] = []
    title = f"Keys of `{parent}`" if parent else ""
    if title:
        lines += [f"{'#' * level} {title}", ""]
    lines += ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    if title:
        lines[-2] = "| Key | Type | Default | Description |"
    nested = []
    for name, spec in options.items():
        where = f"{parent}.{name}" if parent else name
        lines.append(
            f"| `{name}` | {type_cell(spec)} | {default_cell(spec)} | "
            f"{markdown(spec.get('description', ''), role, where)} |"
        )
        if spec.get("options"):
            nested.append((name, spec))
    for name, spec in nested:
        path = f"{parent}.{name}" if parent else name
        if spec.get("type") == "list":
            path += "[]"
        lines.append("")
        lines += tables(spec["options"], role, path, min(level + 1, 4))
    return lines


def role_section(role_dir: Path) -> str:
    specs = yaml.safe_load((role_dir / "meta/argument_specs.yml").read_text())["argument_specs"]
    role = role_dir.name
    lines = [BEGIN]
    for entry, spec in specs.items():
        if len(specs) > 1:
            lines += [f"Entry point `{entry}`:", ""]
        lines += tables(spec.get("options", {}), role)
        lines.append("")
    lines.append(
        f"Every variable, with its full description, is also in "
        f"[{REFERENCE.as_posix()}/{role}_role.rst](../../{REFERENCE.as_posix()}/{role}_role.rst)."
    )
    lines.append(END)
    return "\n".join(lines)


def updated_readme(readme: Path, section: str) -> str:
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"docs: {readme} lacks the markers {BEGIN!r} ... {END!r}")
    return text[:start] + section + text[end + len(END) :]


def defaults_problems(role_dir: Path) -> list[str]:
    """Where defaults/main.yml and meta/argument_specs.yml disagree."""
    defaults_file = role_dir / "defaults/main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    specs = yaml.safe_load((role_dir / "meta/argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"].get("options", {})
    problems = []
    for name, value in (defaults or {}).items():
        if name not in options:
            problems.append(f"{defaults_file}: {name} is not in meta/argument_specs.yml")
        elif "default" not in options[name]:
            problems.append(f"{defaults_file}: {name} has no default in meta/argument_specs.yml")
        elif options[name]["default"] != value:
            problems.append(
                f"{defaults_file}: {name} is {flow(value)}, "
                f"but meta/argument_specs.yml says its default is {flow(options[name]['default'])}"
            )
    for name, spec in options.items():
        if "default" in spec and name not in (defaults or {}):
            problems.append(f"{defaults_file}: {name} has a default in the spec but none here")
    return problems


def render_reference(dest: Path) -> None:
    """antsibull-docs' pages for every module, filter and role, written to ``dest``."""
    link = REPO / "build/collections/ansible_collections/mtls/rollout"
    if not link.exists():
        raise SystemExit(f"docs: {link} is missing (a link to this checkout): run `make venv`")
    env = dict(os.environ)
    # This checkout, and only this collection: scanning the `ansible` package's collections
    # costs seconds. antsibull-docs runs ansible-doc, from this venv.
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build/collections")
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [
        str(Path(sys.executable).parent / "antsibull-docs"),
        "collection",
        "--use-current",
        "--output-format",
        "simplified-rst",
        "--squash-hierarchy",
        "--no-add-antsibull-docs-version",
        "--no-breadcrumbs",
        "--fail-on-error",
        "--dest-dir",
        str(dest),
        COLLECTION,
    ]
    # A fixed argv: this venv's antsibull-docs and a literal collection name.
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"docs: antsibull-docs failed (exit {result.returncode})")


def stale_reference(fresh: Path, current: Path) -> list[str]:
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    current_files = {p.relative_to(current) for p in current.rglob("*") if p.is_file()}
    stale = [str(current / p) + " is missing" for p in sorted(fresh_files - current_files)]
    stale += [
        str(current / p) + " is no longer generated" for p in sorted(current_files - fresh_files)
    ]
    stale += [
        str(current / p) + " is stale"
        for p in sorted(fresh_files & current_files)
        if not filecmp.cmp(fresh / p, current / p, shallow=False)
    ]
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail when a generated file is stale")
    args = parser.parse_args()
    os.chdir(REPO)

    stale: list[str] = []
    mismatches: list[str] = []
    roles = sorted(p for p in Path("roles").iterdir() if (p / "meta/argument_specs.yml").exists())
    for role_dir in roles:
        mismatches += defaults_problems(role_dir)
        readme = role_dir / "README.md"
        text = updated_readme(readme, role_section(role_dir))
        if text != readme.read_text():
            if args.check:
                stale.append(f"{readme} is stale")
            else:
                readme.write_text(text)
                print(f"docs: wrote the variable tables of {readme}")

    # antsibull-docs wants a folder of its own that only its owner may write.
    with tempfile.TemporaryDirectory(prefix="mtls-docs-") as tmp:
        fresh = Path(tmp) / "reference"
        fresh.mkdir(mode=0o755)
        render_reference(fresh)
        if args.check:
            stale += stale_reference(fresh, REFERENCE)
        elif stale_reference(fresh, REFERENCE) if REFERENCE.exists() else True:
            shutil.rmtree(REFERENCE, ignore_errors=True)
            shutil.copytree(fresh, REFERENCE)
            print(f"docs: wrote {REFERENCE}/ ({len(list(REFERENCE.iterdir()))} pages)")

    for problem in stale + mismatches:
        print(f"docs: {problem}", file=sys.stderr)
    if stale:
        print(
            f"docs: generated from meta/argument_specs.yml and DOCUMENTATION; run `{REGENERATE}`",
            file=sys.stderr,
        )
    if mismatches:
        print(
            "docs: defaults/main.yml holds the values and meta/argument_specs.yml documents "
            "them: make them agree",
            file=sys.stderr,
        )
    if stale or mismatches:
        return 1
    if args.check:
        print(f"docs: {REFERENCE}/ and the tables of {len(roles)} role READMEs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
