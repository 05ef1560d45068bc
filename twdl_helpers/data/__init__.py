"""One loader per dataset; each finds real files (path, mirror, cache, download) or returns its bundled sample."""
from . import animal_faces, covertype, mnist, text
from .animal_faces import *  # noqa: F401,F403
from .covertype import *  # noqa: F401,F403
from .fetch import DataNotFoundError, RemoteFile, cache_dir, data_mirror, locate
from .mnist import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403

__all__ = ["DataNotFoundError", "RemoteFile", "cache_dir", "data_mirror", "locate",
           *covertype.__all__, *mnist.__all__, *animal_faces.__all__, *text.__all__]
