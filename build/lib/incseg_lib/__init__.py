"""incseg_lib: class-incremental semantic segmentation on PASCAL VOC 2012 (and CamVid).

The library behind the incseg notebook suite. Import the parts you need, e.g.
``from incseg_lib import metrics, tasks``; nothing heavy happens at import time.
"""

__version__ = "0.1.0"
