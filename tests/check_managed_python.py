#!/usr/bin/env python3
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refuse Python that breaks modules on managed hosts with Python 3.8 (ansible-core 2.19).

ruff with ``target-version = "py38"`` (plugins/ruff.toml) catches *syntax* that 3.8 lacks,
such as ``match`` or parenthesised ``with``. It does not catch code that parses on 3.8 but
fails when it runs, which is what this check looks for in plugins/:

* PEP 604 unions evaluated at run time: ``isinstance(x, A | B)``, ``issubclass``, and
  ``X | None`` or ``int | str`` outside annotations (TypeError before 3.10);
* PEP 585 generics evaluated at run time: ``list[int]``, ``dict[str, Any]``, or a
  ``collections.abc`` class subscripted outside annotations (TypeError before 3.9);
* annotations that use either without ``from __future__ import annotations`` (then they
  are evaluated when the function or class is defined);
* calls that 3.8 lacks: ``str.removeprefix``/``removesuffix`` (3.9), ``zip(strict=...)``
  (3.10), ``int.bit_count`` (3.10), ``functools.cache`` (3.9).

Usage: ``tests/check_managed_python.py [PATH ...]`` (default: plugins). Exit status 1 and
one line per finding when something is found.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}
BUILTIN_TYPES = BUILTIN_GENERICS | {"int", "str", "bytes", "float", "bool", "object", "complex"}
NEWER_METHODS = {
    "removeprefix": "3.9",
    "removesuffix": "3.9",
    "bit_count": "3.10",
}


class Checker(ast.NodeVisitor):
    """Collects findings for one module."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[str] = []
        self.abc_names: set[str] = set()
        self.future_annotations = False

    def report(self, node: ast.AST, message: str) -> None:
        self.findings.append(f"{self.path}:{getattr(node, 'lineno', 0)}: {message}")

    # ---- imports

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "functools" and any(a.name == "cache" for a in node.names):
            self.report(node, "functools.cache needs Python 3.9; use lru_cache(maxsize=None)")
        self.generic_visit(node)

    # ---- annotations: only checked for the __future__ import

    def _annotation(self, node: ast.AST | None) -> None:
        if node is None:
            return
        if not self.future_annotations and _uses_new_typing(node, self.abc_names):
            self.report(
                node,
                "PEP 604/585 annotation without 'from __future__ import annotations'"
                " is evaluated at run time and fails before Python 3.9/3.10",
            )

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = node.args
        for arg in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            arguments.vararg,
            arguments.kwarg,
        ]:
            if arg is not None:
                self._annotation(arg.annotation)
        self._annotation(node.returns)
        for child in [*node.decorator_list, *arguments.defaults, *arguments.kw_defaults]:
            if child is not None:
                self.visit(child)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        if node.value is not None:
            self.visit(node.value)

    # ---- run-time expressions

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        union_check = name in ("isinstance", "issubclass") and len(node.args) == 2
        if union_check and _has_bitor(node.args[1]):
            self.report(node, f"{name}() with an X | Y union fails before Python 3.10; use a tuple")
        if name == "zip" and any(keyword.arg == "strict" for keyword in node.keywords):
            self.report(node, "zip(strict=...) needs Python 3.10")
        if isinstance(func, ast.Attribute) and func.attr in NEWER_METHODS:
            self.report(node, f".{func.attr}() needs Python {NEWER_METHODS[func.attr]}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if node.attr == "cache" and isinstance(value, ast.Name) and value.id == "functools":
            self.report(node, "functools.cache needs Python 3.9; use lru_cache(maxsize=None)")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.BitOr) and (
            _is_type_like(node.left, self.abc_names) or _is_type_like(node.right, self.abc_names)
        ):
            self.report(node, "an X | Y type union evaluated at run time fails before 3.10")
            return
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        value = node.value
        if isinstance(value, ast.Name) and (
            value.id in BUILTIN_GENERICS or value.id in self.abc_names
        ):
            self.report(
                node,
                f"{value.id}[...] evaluated at run time fails before Python 3.9;"
                " use typing.List/Dict/... or move it into an annotation",
            )
            return
        self.generic_visit(node)


def _has_bitor(node: ast.AST) -> bool:
    return any(
        isinstance(child, ast.BinOp) and isinstance(child.op, ast.BitOr) for child in ast.walk(node)
    )


def _is_type_like(node: ast.AST, abc_names: set[str]) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Name):
        return node.id in BUILTIN_TYPES or node.id in abc_names
    if isinstance(node, ast.Subscript):
        return _is_type_like(node.value, abc_names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_type_like(node.left, abc_names) or _is_type_like(node.right, abc_names)
    return False


def _uses_new_typing(node: ast.AST, abc_names: set[str]) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.BinOp) and isinstance(child.op, ast.BitOr):
            return True
        if (
            isinstance(child, ast.Subscript)
            and isinstance(child.value, ast.Name)
            and (child.value.id in BUILTIN_GENERICS or child.value.id in abc_names)
        ):
            return True
    return False


def check_file(path: Path) -> list[str]:
    """Findings for one Python file."""
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return [f"{path}:{exc.lineno}: does not parse: {exc.msg}"]
    checker = Checker(str(path))
    # Imports first, so that the __future__ import and abc names are known everywhere.
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__" and any(a.name == "annotations" for a in node.names):
                checker.future_annotations = True
            if node.module == "collections.abc":
                checker.abc_names.update(alias.asname or alias.name for alias in node.names)
    checker.visit(tree)
    return checker.findings


def main(argv: list[str]) -> int:
    roots = [Path(arg) for arg in argv] or [Path("plugins")]
    files = sorted(
        path for root in roots for path in ([root] if root.is_file() else root.rglob("*.py"))
    )
    findings = [finding for path in files for finding in check_file(path)]
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} construct(s) that fail on Python 3.8 managed hosts")
        return 1
    print(f"{len(files)} file(s) checked for Python 3.8 managed hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
