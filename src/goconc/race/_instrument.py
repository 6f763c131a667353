"""Instrumenting module globals, the way ``go build -race`` instruments memory.

A function that reads or writes a module global goes through ``LOAD_GLOBAL``
and ``STORE_GLOBAL``, which no Python hook can see.  So the source is rewritten
instead: inside every function, each use of a *mutable global* (a name some
function of the module declares ``global``) reports a read, and each
assignment to it reports a write, to the detector.  Module-level code is left
alone: it runs once, before the goroutines it starts.
"""

from __future__ import annotations

import ast
import inspect
import types
from collections.abc import Iterator
from typing import Any

from .. import _racehooks

__all__ = ["HOOK_NAME", "compile_instrumented", "watch_module"]

HOOK_NAME = "__goconc_race__"


class _Hooks:
    """What instrumented code calls, through the module global ``HOOK_NAME``."""

    __slots__ = ()

    @staticmethod
    def r(module: str, name: str, value: Any) -> Any:
        if _racehooks.enabled:
            _racehooks.read((module, name), f"{name} (global of {module})")
        return value

    @staticmethod
    def rs(module: str, name: str) -> None:
        if _racehooks.enabled:
            _racehooks.read((module, name), f"{name} (global of {module})")

    @staticmethod
    def w(module: str, name: str) -> None:
        if _racehooks.enabled:
            _racehooks.write((module, name), f"{name} (global of {module})")


HOOKS = _Hooks()

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _mutable_globals(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
    return names


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names bound in ``fn``'s own scope (not in nested functions)."""
    bound: set[str] = set()
    declared: set[str] = set()
    args = fn.args
    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        bound.add(a.arg)
    for star in (args.vararg, args.kwarg):
        if star is not None:
            bound.add(star.arg)
    body: list[ast.AST] = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    for node in _walk_scope(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound - declared


def _walk_scope(nodes: list[ast.AST]) -> Iterator[ast.AST]:
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _FUNCS):
            # Its name (and decorators, defaults) belong here; its body does not.
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
            stack.extend(node.args.defaults)
            continue
        if isinstance(node, ast.ClassDef):
            stack.extend(node.decorator_list)
            stack.extend(node.bases)
            continue
        stack.extend(ast.iter_child_nodes(node))


class _Rewriter(ast.NodeTransformer):
    def __init__(self, module: str, mutable: set[str]) -> None:
        self.module = module
        self.mutable = mutable
        self.scopes: list[set[str]] = []  # per enclosing function: its instrumented globals
        self.bound: list[set[str]] = []  # per enclosing function: its local names

    # Which names are the module's globals in the function being visited.
    def _globals_here(self) -> set[str]:
        return self.scopes[-1] if self.scopes else set()

    def _enter(self, fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        locals_ = _local_names(fn)
        enclosing: set[str] = set().union(*self.bound)
        here = {n for n in self.mutable if n not in locals_ and n not in enclosing}
        self.scopes.append(here | (self.mutable & _declared_global(fn)))
        self.bound.append(locals_)

    def _leave(self) -> None:
        self.scopes.pop()
        self.bound.pop()

    def _visit_function(self, node: Any) -> Any:
        # Decorators and defaults are evaluated in the enclosing scope.
        if not isinstance(node, ast.Lambda):
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)
        self._enter(node)
        try:
            if isinstance(node, ast.Lambda):
                node.body = self.visit(node.body)
            else:
                node.body = self._statements(node.body)
        finally:
            self._leave()
        return node

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        # Methods are functions of their own; class bodies are not instrumented.
        node.body = [self.visit(s) if isinstance(s, _FUNCS) else s for s in node.body]
        return node

    def _statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            new = self.visit(stmt)
            if new is None:
                continue
            new_stmts = new if isinstance(new, list) else [new]
            out.extend(new_stmts)
        return out

    def generic_visit(self, node: ast.AST) -> ast.AST:
        # Keep statement lists flat when a visit returns several statements.
        for fieldname, old in ast.iter_fields(node):
            if isinstance(old, list) and old and isinstance(old[0], ast.stmt):
                setattr(node, fieldname, self._statements(old))
            elif isinstance(old, list):
                new_list = []
                for item in old:
                    if isinstance(item, ast.AST):
                        item = self.visit(item)
                    if item is not None:
                        new_list.append(item)
                setattr(node, fieldname, new_list)
            elif isinstance(old, ast.AST):
                setattr(node, fieldname, self.visit(old))
        return node

    def visit_Name(self, node: ast.Name) -> Any:
        if isinstance(node.ctx, ast.Load) and node.id in self._globals_here():
            call = _call("r", self.module, node.id, [node])
            return ast.copy_location(call, node)
        return node

    def _writes(self, targets: list[ast.expr]) -> list[ast.stmt]:
        names = [
            n.id
            for t in targets
            for n in ast.walk(t)
            if isinstance(n, ast.Name) and n.id in self._globals_here()
        ]
        return [ast.Expr(_call("w", self.module, n, [])) for n in names]

    def visit_Assign(self, node: ast.Assign) -> Any:
        node.value = self.visit(node.value)
        return [node, *self._writes(node.targets)]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if node.value is not None:
            node.value = self.visit(node.value)
        return [node, *self._writes([node.target])]

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        node.value = self.visit(node.value)
        reads: list[ast.stmt] = []
        if isinstance(node.target, ast.Name) and node.target.id in self._globals_here():
            reads.append(ast.Expr(_call("rs", self.module, node.target.id, [])))
        else:
            node.target = self.visit(node.target)
        return [*reads, node, *self._writes([node.target])]

    def visit_Delete(self, node: ast.Delete) -> Any:
        return [node, *self._writes(node.targets)]


def _declared_global(fn: Any) -> set[str]:
    out: set[str] = set()
    body = fn.body if isinstance(fn.body, list) else [fn.body]
    for node in _walk_scope(body):
        if isinstance(node, ast.Global):
            out.update(node.names)
    return out


def _call(fn: str, module: str, name: str, extra: list[ast.expr]) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=ast.Name(HOOK_NAME, ast.Load()), attr=fn, ctx=ast.Load()),
        args=[ast.Constant(module), ast.Constant(name), *extra],
        keywords=[],
    )


def compile_instrumented(source: str, filename: str, module: str) -> types.CodeType:
    """Compile ``source`` with its mutable globals instrumented."""
    tree = ast.parse(source, filename)
    mutable = _mutable_globals(tree)
    if mutable:
        tree = _Rewriter(module, mutable).visit(tree)
        ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


def watch_module(mod: types.ModuleType) -> types.ModuleType:
    """Watch a module's mutable globals (names its functions declare ``global``).

    The module's functions (and its classes' methods) are recompiled from their
    source with every read and write of those globals reported to the detector.
    Returns the module.  Raises OSError if the source is not available.
    """
    source = inspect.getsource(mod)
    filename = inspect.getsourcefile(mod) or mod.__name__
    code = compile_instrumented(source, filename, mod.__name__)
    setattr(mod, HOOK_NAME, HOOKS)
    by_name = {(c.co_qualname, c.co_firstlineno): c for c in _code_objects(code)}
    for fn in _functions(mod):
        new = by_name.get((fn.__code__.co_qualname, fn.__code__.co_firstlineno))
        if new is not None and len(new.co_freevars) == len(fn.__code__.co_freevars):
            fn.__code__ = new
    return mod


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _code_objects(const)


def _functions(mod: types.ModuleType) -> Iterator[types.FunctionType]:
    for value in list(vars(mod).values()):
        if isinstance(value, types.FunctionType) and value.__module__ == mod.__name__:
            yield value
        elif isinstance(value, type) and value.__module__ == mod.__name__:
            for attr in vars(value).values():
                fn = getattr(attr, "__func__", attr)
                if isinstance(fn, types.FunctionType):
                    yield fn


def install_hooks(namespace: dict[str, Any]) -> None:
    """Make ``namespace`` (a module's globals) able to run instrumented code."""
    namespace[HOOK_NAME] = HOOKS
