"""Thinking with Deep Learning, week 2: the helpers the course notebooks call.

Notebooks use `import twdl_helpers as twdl` and call helpers by name: `twdl.train(...)`,
`twdl.record(...)`, `twdl.load_covertype(...)`. Language-model tools live in `twdl_helpers.lm` (imported on
demand: it loads transformers and peft). The course's tooling (the `twdl` command, grading, sync, the site)
is the separate `twdl_tools` package; nothing here imports it.
"""
from .common import *  # noqa: F401,F403  (setup, seeds, devices, profiles)
from .files import atomic_path, atomic_write, display_path  # noqa: F401
from .params import ParameterError, validate_parameters, watch_parameters  # noqa: F401
from .records import *  # noqa: F401,F403
from .weights import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403  (the one training loop and its callbacks)
from .questions import assert_holds_up, assert_recorded, check, each, grader_loads, model_per_row, question_check  # noqa: F401
from .data import *  # noqa: F401,F403  (one loader per dataset)
from .models import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .evidence import *  # noqa: F401,F403  (run health, paired verdicts over seeds)
from .comparisons import *  # noqa: F401,F403  (module 2: arms trained over seeds, their health and verdicts)
from .features import *  # noqa: F401,F403
from .plotting import *  # noqa: F401,F403
from .widgets import *  # noqa: F401,F403
from .augment import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .runtimes import *  # noqa: F401,F403
from .draws import *  # noqa: F401,F403  (verdicts of the full profile on other data draws)

REPOSITORY_URL = "https://github.com/thinking-with-deep-learning/twdl-week2"
__version__ = "0.1.0"
