"""Language-model helpers for Module 4: loading, token blocks, perplexity, LoRA/QLoRA, metering, tuning.

Imported on demand (`from twdl_helpers import lm`): it loads transformers and peft.
"""
import importlib as _importlib
import warnings as _warnings

# peft reads a property that transformers deprecated; the warning text names the machine's venv path, which must
# not end up in executed notebooks (and says nothing a student can act on).
_warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

# Import the heavy libraries now, while no model exists. A first import inside a helper can leave a stored exception
# (optional dependencies probed and caught) whose traceback keeps the helper's frames alive, and with them the model
# in their locals: an earlier run's model would then stay in memory while the next run is measured.
import bitsandbytes as _bitsandbytes  # noqa: F401
import peft as _peft  # noqa: F401
from peft import LoraConfig as _LoraConfig, PeftModel as _PeftModel, get_peft_model as _get_peft_model  # noqa: F401
from peft import prepare_model_for_kbit_training as _prepare_kbit  # noqa: F401
from transformers import (AutoModelForCausalLM as _AutoModel, AutoTokenizer as _AutoTokenizer,  # noqa: F401
                          BitsAndBytesConfig as _BitsAndBytesConfig, Trainer as _Trainer,
                          TrainingArguments as _TrainingArguments, default_data_collator as _collator)

from .precision import *  # noqa: F401,F403
from .load import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .perplexity import *  # noqa: F401,F403
from .meter import *  # noqa: F401,F403
from .trainer import *  # noqa: F401,F403
from .adapters import *  # noqa: F401,F403
from .tuning import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403

_MODULES = ("precision", "load", "blocks", "perplexity", "meter", "trainer", "adapters", "tuning", "plots", "report")
__all__ = [name for module in _MODULES for name in _importlib.import_module(f"{__name__}.{module}").__all__]
