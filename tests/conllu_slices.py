"""Slices of the shared CoNLL and CoNLL-U files for the recipes' tests."""


def sentence_tags(block):
    """The tags of one sentence: CoNLL-U's UPOS column (multiword and empty-node lines skipped), or
    the last column of a CoNLL line."""
    tags = set()
    for line in block.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 10:
            if "-" not in fields[0] and "." not in fields[0]:
                tags.add(fields[3])
        else:
            tags.add(line.split()[-1])
    return tags


def first_sentences(source, target, count, known_tags_from=None):
    """Writes the first `count` sentences of `source` to `target` and returns `target`. With
    `known_tags_from` (a file written so), only sentences whose tags all occur in it: the recipes
    refuse a dev set with tags their training data lacks."""
    blocks = [block for block in source.read_text(encoding="utf-8").split("\n\n") if block.strip()]
    if known_tags_from is not None:
        known = set().union(
            *(sentence_tags(block) for block in known_tags_from.read_text(encoding="utf-8").split("\n\n"))
        )
        blocks = [block for block in blocks if sentence_tags(block) <= known]
    target.write_text("\n\n".join(blocks[:count]) + "\n\n", encoding="utf-8")
    return target
