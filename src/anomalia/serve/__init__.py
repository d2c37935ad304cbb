"""``anomalia serve``: an HTTP scoring service for a trained run or an exported ONNX model.

Layer: above experiment, below the CLI. Needs the ``serve`` extra (FastAPI, uvicorn,
python-multipart, prometheus-client, onnxruntime): ``pip install 'anomalia[serve]'``.

- :mod:`~anomalia.serve.scorers`: the :class:`Scorer` protocol, a run's Detector (PyTorch) or
  an ONNX model (onnxruntime, no torch) behind it.
- :mod:`~anomalia.serve.images`: request bytes -> images converted like training data; maps
  -> PNG.
- :mod:`~anomalia.serve.batching`: concurrent requests scored together.
- :mod:`~anomalia.serve.app`: the FastAPI app; :mod:`~anomalia.serve.server`: running it.

Only the scorers are imported here, so ``import anomalia.serve`` works without the extra.
"""

from anomalia.serve.scorers import DetectorScorer, ModelInfo, OnnxScorer, Scorer, load_scorer
from anomalia.serve.settings import ServeSettings

__all__ = ["DetectorScorer", "ModelInfo", "OnnxScorer", "Scorer", "ServeSettings", "load_scorer"]
