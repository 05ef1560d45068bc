"""The course's networks, one file per module's family of models."""
from . import animal, mnist, tabular
from .animal import *  # noqa: F401,F403
from .mnist import *  # noqa: F401,F403
from .tabular import *  # noqa: F401,F403

__all__ = [*tabular.__all__, *mnist.__all__, *animal.__all__]
