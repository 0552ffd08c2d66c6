"""SafeBot on Matrix (matrix-nio with E2EE). ``safebot run matrix --config FILE``.

Importing this package is cheap: matrix-nio loads with the adapter, on first use of one of the
names below (the platform registry reads ``safebot.adapters.matrix.platform`` on every command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safebot.adapters import lazy_names

if TYPE_CHECKING:
    from safebot.adapters.matrix.adapter import PLATFORM, MatrixAdapter, MatrixLoginError

__all__ = ["PLATFORM", "MatrixAdapter", "MatrixLoginError"]


__getattr__ = lazy_names("safebot.adapters.matrix.adapter", __all__)
