"""Recall, search time and memory of approximate neighbour-index variants.

The candidate stage searches language-centred lead sentences (the first four
of each document) with an inverted file of 4-bit PQ codes whose best hits are
re-ranked (``dedup.stages.candidates._knn``). This script builds the variants
faiss offers for that on one set of vectors and prints, for each, the recall
of the exact 13 nearest neighbours (2,000 random queries against exact
search), the time to query every row, and the index's bytes per row.

The vectors: N generated documents (``bench/pipeline_scale.py``'s generator)
encoded with its **stand-in encoder** (a StaticEmbedding of the default
model's token embeddings, not the default model), the first four sentences of
each document split naively at ". ", centred per language as the candidate
stage centres them. Compare variants within one run; the recall is that of
the index, not of the pipeline (the candidate stage also takes document
neighbours and linked partners).

    .venv/bin/python bench/neighbour_index.py --docs 30000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from dedup.encoding import cache_root, lazy_encoder
from dedup.stages.candidates import CentredVectors, language_means

#: (factory string after ``IVF{lists},``, re-ranking factor or None)
VARIANTS = (
    ("PQ192x4fs,Refine(SQfp16)", 4),
    ("PQ192x4fs,Refine(SQ8)", 4),
    ("PQ192x4fs,Refine(SQ4)", 8),
    ("PQ192x4fs", None),
    ("PQ384x4fs", None),
    ("SQ8", None),
)
NEIGHBOURS = 13
PROBES = 8


def lead_vectors(n_docs: int, work: Path, model_cache: Path | None) -> np.ndarray:
    """Centred stand-in vectors of the first four sentences of N generated documents."""
    from pipeline_scale import generate, standin_model

    corpus = generate(n_docs, work, 16, 0.5, 0)
    encoder = lazy_encoder(str(standin_model(cache_root(model_cache))), cache_dir=None)
    texts: list[str] = []
    groups: list[int] = []
    languages: dict[str, int] = {}
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            lead = [s for s in record["text"].replace("\n", " ").split(". ") if s.strip()][:4]
            group = languages.setdefault(record.get("lang", ""), len(languages))
            texts += lead
            groups += [group] * len(lead)
    raw = np.asarray(encoder.encode(texts), dtype=np.float32).astype(np.float16)
    row_groups = np.array(groups, dtype=np.int64)
    means = language_means(raw, row_groups, np.ones(len(raw)), 2.0)
    return CentredVectors(raw, row_groups, means).rows(np.arange(len(raw)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30_000)
    parser.add_argument("--work", type=Path, default=None, help="where the corpus is generated")
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=None,
        help="where the stand-in is built (default: dedup's cache)",
    )
    args = parser.parse_args()
    import faiss

    with tempfile.TemporaryDirectory() as scratch:
        vectors = lead_vectors(args.docs, args.work or Path(scratch), args.model_cache)
    n, dim = vectors.shape
    queries = np.sort(np.random.default_rng(0).choice(n, min(n, 2000), replace=False))
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    exact = flat.search(vectors[queries], NEIGHBOURS)[1]
    del flat
    lists = max(1, int(np.sqrt(n) / 2))
    sample = vectors[np.linspace(0, n - 1, min(n, 80 * lists)).astype(np.int64)]
    print(f"{n} lead sentences (stand-in encoder), IVF{lists}, {PROBES} probed")
    for spec, factor in VARIANTS:
        index = faiss.index_factory(dim, f"IVF{lists},{spec}", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter, ivf.cp.min_points_per_centroid = 10, 16
        index.train(sample)
        for start in range(0, n, 4096):
            index.add(vectors[start : start + 4096])
        ivf.nprobe = PROBES
        if factor:
            faiss.downcast_index(index).k_factor = factor
        started = time.perf_counter()
        hits = np.concatenate(
            [index.search(vectors[s : s + 4096], NEIGHBOURS)[1] for s in range(0, n, 4096)]
        )
        seconds = time.perf_counter() - started
        found = sum(
            len(set(a) & set(e))
            for a, e in zip(hits[queries].tolist(), exact.tolist(), strict=True)
        )
        size = len(faiss.serialize_index(index))
        print(
            f"{spec:26s} k_factor={factor or '-':<2} recall={found / exact.size:.3f} "
            f"search_s={seconds:.1f} bytes_per_row={size / n:.0f}"
        )


if __name__ == "__main__":
    main()
