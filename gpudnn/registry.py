"""Families of classes found by name: layers, losses and optimizers for configs, checkpoints and the CLI."""

from __future__ import annotations

from typing import Any, ClassVar


class Registered:
    """Base of a family whose public subclasses register themselves under their class name.

    ``class Layer(Registered, family="layer")`` starts a family; every subclass whose name does not
    start with "_" is then in ``Layer.registry`` ("Dense" -> Dense), so checkpoints and configs store
    class names, and ``Layer.named("dense")`` finds one in any case (the CLI's spelling).
    """

    registry: ClassVar[dict[str, type[Any]]]
    family: ClassVar[str]

    def __init_subclass__(cls, family: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if family is not None:
            cls.registry, cls.family = {}, family
        elif not cls.__name__.startswith("_"):
            cls.registry[cls.__name__] = cls

    @classmethod
    def named(cls, name: str) -> type[Any]:
        """The registered class called ``name`` (any case); a ValueError lists the known ones."""
        by_lower = {key.lower(): value for key, value in cls.registry.items()}
        if not isinstance(name, str) or name.lower() not in by_lower:
            raise ValueError(f"unknown {cls.family} {name!r}; known: {', '.join(cls.registry)}")
        return by_lower[name.lower()]
