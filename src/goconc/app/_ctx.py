"""Where an App is found: the context every hook, server and request is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .. import context
from ..context import Context

if TYPE_CHECKING:
    from . import App

__all__ = ["from_context", "new_context"]

_APP_KEY: Final = object()  # private: no other package can collide with it


def from_context(ctx: Context) -> App | None:
    """The App whose hooks or servers were given ``ctx`` (or a descendant), else None.

    ::

        async def handler(scope, receive, send):
            app = goconc.app.from_context(scope["goconc.ctx"])
            print(app.name, app.version, app.endpoints)
    """
    found: Any = ctx.value(_APP_KEY)
    return found  # type: ignore[no-any-return]


def new_context(parent: Context, app: App) -> Context:
    """A child of ``parent`` carrying ``app``, found by :func:`from_context`."""
    ctx: Context = context.with_value(parent, _APP_KEY, app)
    return ctx
