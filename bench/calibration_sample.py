"""Write ``dedup/encoding/calibration.txt``: the texts the int8 OpenVINO build calibrates on.

Static int8 quantisation fixes every product's activation scale once, at build
time, from the activations of a sample (see
:mod:`dedup.encoding.openvino_backend`). The sample must span the scripts and
languages the model meets, or a script unseen in it can overflow its scales.
It takes, for each of the 180 languages of the FLORES-200 development set
(``bench/data/flores-dev``), the first sentence (dedup's own splitter) of the
language's first document, in the file's order; at most ``--max-chars``
characters each. Re-run only to change the sample: it is part of the build
(``openvino_backend.OPENVINO_BACKEND_VERSION`` must then be bumped).

    python bench/calibration_sample.py [--max-chars 300]

The sentences are FLORES-200 (NLLB Team et al., 2022), CC BY-SA 4.0; the file
says so in its header and is shared under the same license. Since flores-dev is
also a development set, its figures are in-sample for calibration too (the
held-out sets come from FLORES-200's other split).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLORES_DEV = REPO / "bench/data/flores-dev"
OUT = REPO / "dedup/encoding/calibration.txt"
HEADER = """\
# Calibration sample of dedup's int8 OpenVINO build: one sentence per language, 180 languages.
# From the dev split of FLORES-200 (NLLB Team et al., 2022, "No Language Left Behind"),
# CC BY-SA 4.0; this file is shared under the same license. Made by bench/calibration_sample.py.
"""


def read_langs(folder: Path) -> dict[str, str]:
    """A development set's ``langs.tsv`` (document id -> language), empty where it has none."""
    if not (folder / "langs.tsv").is_file():
        return {}
    with (folder / "langs.tsv").open(encoding="utf-8") as f:
        return {row["id"]: row["lang"] for row in csv.DictReader(f, delimiter="\t")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-chars", type=int, default=300, help="longest sentence kept [300]")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from dedup.stages.segment import split_sentences

    lang_of = read_langs(FLORES_DEV)
    picked: dict[str, str] = {}
    with (FLORES_DEV / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            lang = lang_of[doc["id"]]
            if lang in picked:
                continue
            first = split_sentences(doc["text"], lang.split("_")[0])[0]
            picked[lang] = " ".join(first.split())[: args.max_chars]
    OUT.write_text(HEADER + "".join(f"{s}\n" for s in picked.values()), encoding="utf-8")
    print(f"{len(picked)} sentences -> {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
