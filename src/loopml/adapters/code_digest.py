"""Digests of a step's code: its own source and the project functions it calls.

The source of each function is parsed and dumped without positions, so comments, blank
lines and formatting do not change a digest; a changed statement, default or decorator
argument does. From the step function the digester follows the names its body uses
(``helper(x)``, ``features.build(x)``, a class it instantiates) to functions and classes
defined in the **project**: files under the project root and outside any virtual
environment or ``site-packages``. Library code is covered by the step's declared library
versions instead. A function whose source cannot be read (defined in a REPL) is hashed
from its bytecode and constants.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.metadata
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loopml.domain.errors import InvalidInput

_LIBRARY_MARKERS = ("site-packages", "dist-packages", ".venv", "venv")
_CONSTANTS = (int, float, str, bytes, bool, tuple, frozenset)
MAX_FUNCTIONS = 500  # a safety bound on how far the call graph is followed


class SourceCodeDigester:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # Parsed source by code object (or class): a code object never changes while the
        # process lives, so each function is read and parsed once per process, not once
        # per step per run.
        self._parsed: dict[object, tuple[str, ast.AST | None]] = {}

    def digest(self, func: Callable[..., Any]) -> dict[str, str]:
        found: dict[str, str] = {}
        todo: list[object] = [_unwrap(func)]
        seen: set[int] = set()
        while todo and len(found) < MAX_FUNCTIONS:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            found[self._qualified(obj)], tree = self._one(obj)
            for name, target in self._referenced(obj, tree):
                if isinstance(target, _CONSTANTS):
                    text = _constant_text(target)
                    key = f"{self._where(obj)}:{name}"
                    found[key] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
                elif id(target) not in seen:
                    todo.append(target)
        return dict(sorted(found.items()))

    def library_version(self, distribution: str) -> str:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError as exc:
            raise InvalidInput(
                f"library {distribution!r} is declared by a step but is not installed; "
                "install it or fix the name (the distribution's name on PyPI, e.g. "
                "'scikit-learn')"
            ) from exc

    # -------------------------------------------------------------------------------------
    def _one(self, obj: object) -> tuple[str, ast.AST | None]:
        key = getattr(obj, "__code__", obj)
        with contextlib.suppress(TypeError):  # an unhashable callable is never memoised
            if key in self._parsed:
                return self._parsed[key]
        result = self._parse(obj)
        with contextlib.suppress(TypeError):
            self._parsed[key] = result
        return result

    def _parse(self, obj: object) -> tuple[str, ast.AST | None]:
        try:
            source = inspect.getsource(obj)  # type: ignore[arg-type]
            parsed = ast.parse(_dedent(source))
            text = ast.dump(parsed, annotate_fields=False, include_attributes=False)
            tree: ast.AST | None = parsed
        except (OSError, TypeError, SyntaxError):
            tree = None
            text = _bytecode_text(obj)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest(), tree

    def _referenced(self, obj: object, tree: ast.AST | None) -> Iterator[tuple[str, object]]:
        """The project functions and classes, and the module constants, ``obj`` uses."""
        scope = _globals(obj)
        if tree is None:
            return
        free = _global_names(obj)
        own_module = sys.modules.get(getattr(obj, "__module__", ""))
        project_module = own_module is not None and self._is_project(own_module)
        for node in ast.walk(tree):
            target: object = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if free is not None and node.id not in free:
                    continue  # a parameter or local variable, not the global of that name
                target = scope.get(node.id)
                if project_module and isinstance(target, _CONSTANTS) and _plain(target):
                    yield node.id, target
                    continue
            elif isinstance(node, ast.Attribute):
                module = _module_named(node.value, scope, free)  # `features`, `pkg.features`
                if module is not None and self._is_project(module):
                    target = getattr(module, node.attr, None)
                    if isinstance(target, _CONSTANTS) and _plain(target):
                        yield ast.unparse(node), target
                        continue
            target = _unwrap(target)
            code_like = inspect.isfunction(target) or inspect.isclass(target)
            if code_like and self._is_project(target):
                yield self._qualified(target), target

    def _qualified(self, obj: object) -> str:
        return f"{self._where(obj)}:{getattr(obj, '__qualname__', repr(obj))}"

    def _where(self, obj: object) -> str:
        """The file of ``obj`` relative to the project root (stable whatever name its
        module was imported under), else its module's name."""
        try:
            file = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        except TypeError:
            file = None
        if file is not None:
            path = Path(file).resolve()
            if path.is_relative_to(self.root):
                return path.relative_to(self.root).as_posix()
        return str(getattr(obj, "__module__", "?"))

    def _is_project(self, obj: object) -> bool:
        try:
            file = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        except TypeError:
            return False
        if file is None:
            return False
        path = Path(file).resolve()
        if any(part in _LIBRARY_MARKERS for part in path.parts):
            return False
        return path.is_relative_to(self.root)


def _plain(value: object) -> bool:
    """A module constant worth hashing: plain values, not classes or modules."""
    if isinstance(value, tuple | frozenset):
        return all(isinstance(v, _CONSTANTS) and _plain(v) for v in value)
    return True


def _module_named(
    node: ast.expr, scope: dict[str, Any], free: set[str] | None
) -> types.ModuleType | None:
    """The module a name or dotted path of names refers to (``pkg.features``), if any."""
    if isinstance(node, ast.Name):
        if free is not None and node.id not in free:
            return None  # a parameter or local named like a module
        found = scope.get(node.id)
    elif isinstance(node, ast.Attribute):
        parent = _module_named(node.value, scope, free)
        found = None if parent is None else getattr(parent, node.attr, None)
    else:
        return None
    return found if isinstance(found, types.ModuleType) else None


def _constant_text(value: object) -> str:
    """``repr(value)``, but with a frozenset's members sorted: their order follows string
    hashing, which Python salts per process, and the digest must not change between runs."""
    if isinstance(value, frozenset):
        return (
            f"frozenset({{{', '.join(sorted(map(_constant_text, value)))}}})"
            if value
            else "frozenset()"
        )
    if isinstance(value, tuple):
        items = [_constant_text(v) for v in value]
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    return repr(value)


def _unwrap(obj: object) -> object:
    func = getattr(obj, "func", None)  # a loopml Step wraps its function
    if func is not None and callable(func) and hasattr(obj, "outputs"):
        obj = func
    return inspect.unwrap(obj) if callable(obj) else obj


def _globals(obj: object) -> dict[str, Any]:
    if inspect.isfunction(obj):
        scope = dict(obj.__globals__)
        closure = inspect.getclosurevars(obj)
        scope.update(closure.nonlocals)
        return scope
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return dict(vars(module)) if module is not None else {}


def _global_names(obj: object) -> set[str] | None:
    """The names a function's code looks up outside itself (globals, closure cells and
    attributes), from its code objects; ``None`` for a class, whose body defines its own."""
    code = getattr(obj, "__code__", None)
    if code is None:
        return None
    names: set[str] = set()
    todo = [code]
    while todo:
        c = todo.pop()
        names.update(c.co_names, c.co_freevars)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _dedent(source: str) -> str:
    lines = source.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


def _bytecode_text(obj: object) -> str:
    code = getattr(obj, "__code__", None)
    if code is None:
        return repr(obj)
    return _code_text(code)


def _code_text(code: types.CodeType) -> str:
    """Instructions, constants and names of ``code`` and of the code nested in it
    (comprehensions, lambdas): the repr of a nested code object holds its address."""
    consts = ", ".join(
        _code_text(c) if isinstance(c, types.CodeType) else _constant_text(c)
        for c in code.co_consts
    )
    return f"{code.co_code!r} [{consts}] {code.co_names!r}"
