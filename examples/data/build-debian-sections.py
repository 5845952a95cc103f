#!/usr/bin/env python3
"""Builds examples/data/debian-sections.jsonl: real package descriptions from Debian's archive,
labelled by the package's Section, as a harder classification set than the shipped sentiment one.

Source: the APT lists of Debian 12 "bookworm" main (amd64) that `apt-get update` leaves in
/var/lib/apt/lists: `Packages` gives each binary package's Section, Source and Description-md5;
`Translation-en` gives the English description (synopsis + long text). Docker images switch
translations off, so fetch them once with:

    apt-get update -o Acquire::Languages=en

Four sections that all describe command-line and system software, so the words overlap:
admin (system administration), devel (development tools), net (networking), utils (utilities).
One package per source package and section (binary packages of one source share their text, and
would leak between splits), transitional/dummy packages and descriptions under 80 characters
left out. Each text is the synopsis and the first paragraph of the long description, whitespace
collapsed, cut at a word boundary to at most 300 characters. The package name is not in the text.
A seeded sample of PER_LABEL records per section, each with a seeded split (80% train, 10%
validation, 10% test, stratified by label), so the platform job (dataset.fields.split = "split")
and the engine bench (io.tuneline.engine.bench.ClassifierQuality) hold out the same test set.

Usage: examples/data/build-debian-sections.py [OUTPUT]   (Python 3 standard library only)
"""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

LISTS = Path("/var/lib/apt/lists")
PACKAGES = "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
TRANSLATIONS = "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en"
LABELS = ["admin", "devel", "net", "utils"]
PER_LABEL = 800
MAX_CHARS = 300
MIN_CHARS = 80
SEED = 42


def read_list(stem):
    """A list file's text, whatever apt compressed it with (apt-helper decompresses)."""
    for path in sorted(LISTS.glob(stem + "*")):
        out = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True
        ).stdout
        return out.decode("utf-8", errors="replace")
    sys.exit(
        "no %s* in %s; run: apt-get update -o Acquire::Languages=en" % (stem, LISTS)
    )


def stanzas(text):
    """RFC 822 stanzas as dicts; continuation lines are kept with their leading space."""
    for block in text.split("\n\n"):
        fields = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def text_of(description):
    """Synopsis + first paragraph of the long description, as one line."""
    synopsis, _, rest = description.partition("\n")
    paragraph = []
    for line in rest.split("\n"):
        line = line[1:] if line.startswith(" ") else line
        if line.strip() == ".":
            break
        paragraph.append(line)
    text = synopsis.strip().rstrip(".") + ". " + " ".join(paragraph)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit(" ", 1)[0]
    return text


def main():
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("debian-sections.jsonl")
    translations = {}
    for t in stanzas(read_list(TRANSLATIONS)):
        if "Description-en" in t:
            translations[(t["Package"], t.get("Description-md5"))] = t["Description-en"]
    by_label = {label: {} for label in LABELS}
    for p in stanzas(read_list(PACKAGES)):
        section = p.get("Section", "")
        if section not in by_label:
            continue
        description = translations.get((p["Package"], p.get("Description-md5")))
        if description is None:
            continue
        if re.search(r"transitional|dummy package", description, re.IGNORECASE):
            continue
        text = text_of(description)
        if len(text) < MIN_CHARS:
            continue
        source = p.get("Source", p["Package"]).split(" ")[0]
        # The first binary package of a source (in archive order) stands for it.
        by_label[section].setdefault(source, text)
    rng = random.Random(SEED)
    records = []
    for label in LABELS:
        texts = sorted(set(by_label[label].values()))
        if len(texts) < PER_LABEL:
            sys.exit("section %s has only %d usable descriptions" % (label, len(texts)))
        chosen = rng.sample(texts, PER_LABEL)
        n_test = PER_LABEL // 10
        for i, text in enumerate(chosen):
            split = "test" if i < n_test else "validation" if i < 2 * n_test else "train"
            records.append({"text": text, "label": label, "split": split})
    rng.shuffle(records)
    with open(output, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {label: len(by_label[label]) for label in LABELS}
    print("wrote %d records to %s (usable sources per section: %s)" % (len(records), output, counts))


if __name__ == "__main__":
    main()
