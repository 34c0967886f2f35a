"""Write a text corpus as nanoGPT token bins: `python -m sparse_moe.prepare --input corpus.txt --out data/tok`.

Writes <out>/train.bin and <out>/val.bin (uint16 ids) and <out>/meta.json; train with
`python -m experiments.run experiment=moe_char data=tokens data.path=<out>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparse_moe.tokens import TOKENIZERS, write_bins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparse_moe.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="UTF-8 text file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tokenizer", default="bytes", choices=TOKENIZERS.names())
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        text = Path(args.input).read_text(encoding="utf-8")
        meta = write_bins(text, Path(args.out), args.tokenizer, args.val_fraction)
    except (OSError, UnicodeDecodeError, ValueError, ImportError) as e:
        print(f"input error: --input={args.input!r}: {e}", file=sys.stderr)
        return 4
    print(f"{args.out}: {meta['n_train']} train + {meta['n_val']} val tokens, {meta['tokenizer']} "
          f"(vocab {meta['vocab_size']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
