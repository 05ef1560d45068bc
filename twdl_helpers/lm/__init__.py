"""Language-model helpers for Module 4: loading, token blocks, perplexity, LoRA/QLoRA, metering, tuning.

Imported on demand (`from twdl_helpers import lm`): it loads transformers and peft.
"""
import importlib as _importlib

from .load import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .perplexity import *  # noqa: F401,F403
from .meter import *  # noqa: F401,F403
from .trainer import *  # noqa: F401,F403
from .adapters import *  # noqa: F401,F403
from .tuning import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403

_MODULES = ("load", "blocks", "perplexity", "meter", "trainer", "adapters", "tuning", "plots")
__all__ = [name for module in _MODULES for name in _importlib.import_module(f"{__name__}.{module}").__all__]
