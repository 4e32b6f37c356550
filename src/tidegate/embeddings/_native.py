"""Load order of native libraries that otherwise crash each other.

usearch's compiled module links its own copy of libstdc++, whose process-wide (GNU unique)
symbols then break onnxruntime's: importing onnxruntime *after* usearch segfaults the process
(seen with usearch 2.26.6 and onnxruntime 1.31–1.32), while the other order works. Every module of
ours that imports usearch imports this module first; the Gateway should import it before anything
else that may pull in usearch.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("onnxruntime") is not None:  # the `local` extra is installed
    import onnxruntime  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
