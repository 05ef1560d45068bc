"""One loader per dataset, all finding their files by one rule (`fetch.resolve`) and verifying what they find."""
from . import animal_faces, covertype, errors, mnist, samples, text
from .animal_faces import *  # noqa: F401,F403
from .covertype import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .fetch import RemoteFile, locate, resolve
from .mnist import *  # noqa: F401,F403
from .samples import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from ..files import cache_dir, data_mirror

__all__ = ["RemoteFile", "locate", "resolve", "cache_dir", "data_mirror",
           *errors.__all__, *samples.__all__, *covertype.__all__, *mnist.__all__, *animal_faces.__all__,
           *text.__all__]
