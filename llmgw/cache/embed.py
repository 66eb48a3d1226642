"""Embedding models for the semantic cache.

Contract:
- An :class:`Embedder` has a ``name`` (stored with each vector, so vectors from another model are never compared)
  and ``embed(texts)`` returning a float32 array of shape ``(len(texts), dim)`` whose rows have unit length (or
  are all zero for a text with nothing to embed). ``embed`` may block: call it off the event loop.
- :class:`HashEmbedder` is deterministic, needs no model files, and knows only word identity (a bag of words);
  tests use it where the real model is not the point.
- :func:`load_model2vec` loads a model2vec ``StaticModel`` (numpy only, no torch) from a local folder or a hub id.
  A hub id is taken from the local Hugging Face cache only, unless ``allow_download``: with no network a missing
  model fails at once with a :class:`EmbedderError` naming it, never hangs.
- :class:`LazyEmbedder` loads its model once, on first use, from whichever thread first needs it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "minilm-l6-int8"
_WORD = re.compile(r"[\w']+")


class EmbedderError(Exception):
    """The embedding model could not be loaded; the message names the path or id and what to do."""


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` as float32 with each non-zero row scaled to unit length."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class HashEmbedder:
    """A deterministic bag-of-words embedder: each lower-cased word hashed to a signed slot of ``dim``."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hash-bow-{dim}"

    def _slot(self, word: str) -> tuple[int, float]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 63) & 1 else -1.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                slot, sign = self._slot(word)
                out[row, slot] += sign
        return normalize_rows(out)


class Model2VecEmbedder:
    """A model2vec ``StaticModel`` as an :class:`Embedder`."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(self.model.encode(list(texts)))


# The file layouts model2vec loads: (config, embeddings, tokenizer), as in model2vec's own persistence module.
MODEL_LAYOUTS = (("config.json", "model.safetensors", "tokenizer.json"),
                 ("config_sentence_transformers.json", "model.safetensors", "tokenizer.json"),
                 ("config_sentence_transformers.json", "0_StaticEmbedding/model.safetensors",
                  "0_StaticEmbedding/tokenizer.json"))


def check_model_folder(path: Path) -> Path:
    """``path`` if it holds the files of a model2vec model; else :class:`EmbedderError` naming what is missing."""
    for layout in MODEL_LAYOUTS:
        if all((path / name).is_file() for name in layout):
            return path
    missing = [name for name in MODEL_LAYOUTS[0] if not (path / name).is_file()]
    raise EmbedderError(f"[cache] model folder {str(path)!r} is not a model2vec model: {', '.join(missing)}"
                        " missing")


def resolve_model_path(spec: str | Path | None, *, allow_download: bool = False) -> Path:
    """The local folder of model ``spec``: a folder as it is, the packaged default for ``None``, or a hub id's
    snapshot in the local Hugging Face cache (downloaded only when ``allow_download``). The folder must hold a
    model2vec model's files (:func:`check_model_folder`); their contents are read only when the model loads."""
    if spec is None or spec == "":
        path = DEFAULT_MODEL
        if not path.is_dir():
            raise EmbedderError(f"the packaged embedding model is missing ({path}); reinstall llmgw or set"
                                " [cache] model to a model2vec folder")
        return path
    path = Path(spec).expanduser()
    if path.is_dir():
        return check_model_folder(path)
    text = str(spec)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise EmbedderError(f"[cache] model {text!r} is not a folder (and not a hub id like owner/name)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - model2vec depends on huggingface_hub
        raise EmbedderError(f"cannot resolve hub id {text!r}: huggingface_hub is not installed") from exc
    try:
        return check_model_folder(Path(snapshot_download(text, local_files_only=not allow_download)))
    except EmbedderError:
        raise
    except LocalEntryNotFoundError:
        raise EmbedderError(f"[cache] model {text!r} is not a local folder and is not in the local Hugging Face"
                            " cache; downloads are off (set [cache] allow_download = true, or point [cache] model"
                            " at a folder)") from None
    except Exception as exc:
        raise EmbedderError(f"[cache] model {text!r} could not be fetched: {type(exc).__name__}: {exc}") from None


def load_model2vec(spec: str | Path | None = None, *, allow_download: bool = False) -> Model2VecEmbedder:
    """Load a model2vec model (see :func:`resolve_model_path`); raises :class:`EmbedderError`."""
    path = resolve_model_path(spec, allow_download=allow_download)
    try:
        from model2vec import StaticModel
    except ImportError as exc:
        raise EmbedderError("the semantic cache needs the model2vec package (pip install model2vec)") from exc
    try:
        model = StaticModel.from_pretrained(str(path), force_download=False)
    except Exception as exc:
        raise EmbedderError(f"cannot load the embedding model at {path}: {type(exc).__name__}: {exc}") from None
    return Model2VecEmbedder(model, f"model2vec:{path.name}")


class LazyEmbedder:
    """An :class:`Embedder` that builds the real one on first use (once, thread-safe)."""

    def __init__(self, factory: Callable[[], Embedder], name: str) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._inner: Embedder | None = None
        self.name = name

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def get(self) -> Embedder:
        """The loaded embedder (loads it now if needed; may raise :class:`EmbedderError`)."""
        inner = self._inner
        if inner is None:
            with self._lock:
                if self._inner is None:
                    self._inner = self._factory()
                inner = self._inner
        return inner

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.get().embed(texts)
