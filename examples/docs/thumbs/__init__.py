"""thumbs: a reusable taskmill domain that makes thumbnails (the library of docs/domain-library.md).

Applications register ``thumbs.domain`` with their scheduler and submit ``thumbs.Resize`` tasks.
"""

from .tasks import Resize, Settings, Thumbnail, domain, make_thumbnail

__all__ = ["Resize", "Settings", "Thumbnail", "domain", "make_thumbnail"]
__version__ = "2.0.0"
