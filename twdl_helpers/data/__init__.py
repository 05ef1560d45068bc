"""One loader per dataset; each finds real files (path, mirror, cache, download) or returns its bundled sample."""
from .fetch import DataNotFoundError, RemoteFile, cache_dir, data_mirror, locate

__all__ = ["DataNotFoundError", "RemoteFile", "cache_dir", "data_mirror", "locate"]
