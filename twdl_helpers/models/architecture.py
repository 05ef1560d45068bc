"""What rebuilds a course model from data: each model remembers the arguments it was built with.

The grader rebuilds a student's model from its exported weights (safetensors) and these arguments, never by
unpickling it: `construction(model)` gives (class name, arguments), `ARCHITECTURES` (in `twdl_helpers.models`)
names the classes it may build, and the grader's reader (`twdl_helpers.claims`) builds one on the meta device,
without allocating its weights, to check the exported tensors against it before the real model is made.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

from torch import nn

__all__ = ["Rebuildable", "construction"]

_ATTRIBUTE = "_twdl_construction"


class Rebuildable:
    """Mixin for the helpers' models: remembers the class and the arguments of the outermost constructor call.

    `device` is not remembered (a rebuilt model lives where the grader puts it); everything else is, as given.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def remembering_init(self, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            arguments = {k: v for k, v in list(bound.arguments.items())[1:] if k != "device"}
            object.__setattr__(self, _ATTRIBUTE, (cls.__name__, arguments))  # the outermost call finishes last

        cls.__init__ = remembering_init


def construction(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """(class name, constructor arguments but the device) of a helpers' model, else None."""
    found = getattr(model, _ATTRIBUTE, None)
    return found if isinstance(found, tuple) and len(found) == 2 and found[0] == type(model).__name__ else None
