"""What the engines read of a target (``config.Target``), as a type they can name without importing the targets
file's layer above them."""

from __future__ import annotations

from typing import Protocol


class TargetView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def schema(self) -> str | None: ...

    @property
    def ignore_tables(self) -> tuple[str, ...]: ...
