"""SafeBot on Matrix (matrix-nio with E2EE). ``safebot run matrix --config FILE``.

Importing this package is cheap: matrix-nio loads with the adapter, on first use of one of the
names below (the platform registry reads ``adapters.matrix.platform`` on every command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.matrix.adapter import PLATFORM, MatrixAdapter, MatrixLoginError

__all__ = ["PLATFORM", "MatrixAdapter", "MatrixLoginError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("adapters.matrix.adapter"), name)
    raise AttributeError(name)
