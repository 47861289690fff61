"""``Registry``: the one implementation behind every ``register_x / get_x / available_x``.

Things users extend (rule kinds, delivery channels, DQM baselines, detector faults, ...)
live in a ``Registry``: a duplicate name is refused, an unknown name is an error that lists
what is available, and the built-ins are filled in lazily, once, before any lookup or
registration (so registering an extra item first never hides the built-ins, and a user
item cannot silently shadow a built-in of the same name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from hotline.errors import ConfigError, HotlineError


class Registry[T]:
    """Named items of one kind (``what``, e.g. "rule kind"), with lazily registered built-ins."""

    def __init__(
        self,
        what: str,
        builtins: Callable[[], Iterable[tuple[str, T]]] | None = None,
        error: type[HotlineError] = ConfigError,
        sort: bool = True,
    ) -> None:
        self.what = what
        self._builtins = builtins
        self._error = error
        self._sort = sort
        self._items: dict[str, T] = {}
        self._loaded = builtins is None

    def _load(self) -> None:
        if not self._loaded and self._builtins is not None:  # no builtins: loaded from the start
            self._loaded = True  # first: a loader that looks names up must not recurse
            try:
                for name, item in self._builtins():
                    self._items.setdefault(name, item)
            except BaseException:
                self._loaded = False  # a failed load is retried (and fails loudly) next time
                raise

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name``; a name that is already registered is refused."""
        self._load()
        if name in self._items:
            raise self._error(f"{self.what} '{name}' is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item called ``name``; an error listing the available names if there is none."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise self._error(
                f"unknown {self.what} '{name}'; available: {', '.join(self.available())}"
            ) from None

    def available(self) -> list[str]:
        """Registered names (sorted, or in registration order)."""
        self._load()
        return sorted(self._items) if self._sort else list(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())

    def __len__(self) -> int:
        self._load()
        return len(self._items)
