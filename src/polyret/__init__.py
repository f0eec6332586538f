"""polyret: multilingual dense retrieval with hybrid-batch fine-tuning (arXiv 2408.10536).

Pipeline, one module per stage: data -> batches -> model -> loss -> train -> evaluate -> report.
"""

from polyret.errors import PolyretError

__version__ = "0.1.0"
__all__ = ["PolyretError", "__version__"]
