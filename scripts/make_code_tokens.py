r"""Build completion/models/data/<family>-code-tokens.json.gz: the output tokens kept by pruning.

A token is kept when it occurs in a corpus of code (Python, C/C++ headers, JavaScript and
TypeScript found on the machine) or, with --ascii, when its text is ASCII: identifiers are
made of domain words a code corpus misses (with the code corpus alone the model wrote
`is_palindrom` for `is_palindrome`, whose piece `indrome` was pruned). Byte-level and
control tokens are always kept by completion/models/vocab_prune.py itself.

    python scripts/make_code_tokens.py TOKENIZER_JSON OUT --root py=/usr/lib/python3.11 \\
        --root c=/usr/include --root js=PATH_TO_NODE_MODULES --ascii
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import sys

EXTENSIONS = {
    "py": (".py",),
    "c": (".h", ".c", ".hpp", ".cc", ".cpp"),
    "js": (".js", ".ts", ".mjs", ".tsx"),
    "go": (".go",),
    "rs": (".rs",),
    "java": (".java",),
}


def main() -> int:
    """Count the tokens of a code corpus and write those kept."""
    from tokenizers import Tokenizer

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--root", action="append", default=[], help="LANG=DIR, repeatable")
    ap.add_argument("--chars", type=int, default=20_000_000, help="corpus size per root")
    ap.add_argument("--ascii", action="store_true", help="also keep every ASCII token")
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    counts: collections.Counter[int] = collections.Counter()
    rng = random.Random(0)
    for spec in args.root:
        lang, root = spec.split("=", 1)
        files = sorted(
            os.path.join(d, f)
            for d, _, fs in os.walk(root)
            for f in fs
            if f.endswith(EXTENSIONS[lang]) and not f.endswith(".min.js")
        )
        rng.shuffle(files)
        texts, total = [], 0
        for path in files:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            if len(text) > 500_000:
                continue
            texts.append(text)
            total += len(text)
            if total > args.chars:
                break
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            counts.update(enc.ids)
        sys.stderr.write(f"{spec}: {len(texts)} files, {total} chars, {len(counts)} tokens\n")
    keep = {tok.id_to_token(i) for i in counts}
    if args.ascii:
        size = tok.get_vocab_size()
        keep |= {tok.id_to_token(i) for i in range(size) if tok.decode([i]).isascii()}
    with gzip.open(args.out, "wt", encoding="utf-8") as out:
        json.dump(sorted(keep), out, ensure_ascii=False)
    sys.stderr.write(f"{len(keep)} tokens -> {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
