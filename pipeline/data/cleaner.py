"""Clean stage: normalise one document's text, then keep it or name the reason it is dropped.

`Cleaner(config)(doc)` -> `(pieces, None)` or `([], reason)`. Rules run in this order, each
switchable in `CleanConfig`:

1. strip_html          tags out (block tags -> line break), <script>/<style>/comments out,
                       entities decoded (&nbsp; &gt; &#8220; ...)
2. remove_control      ANSI escape sequences, C0/C1 controls (whitespace ones kept for rule 5),
                       zero-width and bidi marks, soft hyphen, BOM, U+FFFD
3. normalize_width     full-width ASCII (U+FF01-FF5E) -> ASCII, ideographic space -> space,
                       EXCEPT the Chinese sentence punctuation ！（），：；？ which stays
                       full-width; 。、《》【】“”‘’… are not in that block and never change
4. traditional_to_simplified   opencc t2s (optional, off by default)
5. collapse_whitespace every line break -> \\n, other whitespace runs -> one space, spaces
                       around line breaks and blank lines removed (paragraphs stay, one \\n
                       apart), text stripped
6. join_cjk_spaces     a space between two CJK characters (Han, kana, CJK/full-width
                       punctuation, “”‘’…—) is removed: line-wrapping debris, "中 文"

Filters then run on the cleaned text (the first that fires names the reason): empty,
too_short, repetitive_chars, repetitive_lines, low_cjk_share. With `max_chars`, a kept text
longer than that is split at sentence ends into pieces instead of being dropped.

Everything is a pure function of (text, config): deterministic. Hot-path regexes scan in C;
Python callbacks run only per match, and matches are rare in normal text.
"""

from __future__ import annotations

import html
import importlib.util
import re
from collections import Counter
from dataclasses import dataclass

from pipeline.formats.documents import Document

DROP_REASONS = ("empty", "too_short", "repetitive_chars", "repetitive_lines", "low_cjk_share")

# --- character classes -------------------------------------------------------------------
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# Characters written without spaces between them in Chinese (and Japanese) text.
CJK = HAN + "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\uff00-\uffef\u2018\u2019\u201c\u201d\u2026\u2014"

_HAN_RUN = re.compile(f"[{HAN}]+")
# Words in Latin script (English, pinyin, code identifiers): the non-Chinese text a Chinese
# corpus actually meets. Other scripts have no Han at all, or (Japanese) pass as CJK.
_LATIN_WORD = re.compile("[A-Za-z\u00c0-\u024f]+")

# --- rule 1: HTML --------------------------------------------------------------------------
_BLOCK_TAGS = frozenset(
    "br p div li ul ol tr td th table h1 h2 h3 h4 h5 h6 blockquote pre hr section article "
    "header footer nav aside dd dt dl".split()
)
_HTML = re.compile(
    r"<!--.*?-->"  # comment
    r"|<(script|style)\b[^>]*>.*?</\1\s*>"  # code and styles, with their content
    r"|<![^<>]*>"  # <!DOCTYPE ...>, <![CDATA[ (best effort)
    r"|</?([A-Za-z][A-Za-z0-9:-]*)(?=[\s/>])[^<>]*>",  # a tag; ASCII name so "x<y且y>z" survives
    re.IGNORECASE | re.DOTALL,
)


def _replace_tag(match: re.Match) -> str:
    name = match.group(2)
    return "\n" if name and name.lower() in _BLOCK_TAGS else ""


# --- rule 2: control characters -------------------------------------------------------------
_CONTROL = re.compile(
    "\x1b\\[[0-?]*[ -/]*[@-~]"  # ANSI CSI: colours, cursor moves
    "|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"  # ANSI OSC: terminal titles, links
    "|\x1b[@-Z\\\\-_]?"  # other escapes, or a lone ESC
    "|[\x00-\x08\x0e-\x1f\x7f-\x9f"  # C0 except \t \n \v \f \r; DEL; C1
    "\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufffd]+"
)

# --- rule 3: width -------------------------------------------------------------------------
KEEP_FULL_WIDTH = "！（），：；？"
_WIDTH_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F) if chr(code) not in KEEP_FULL_WIDTH}
_WIDTH_TABLE[0x3000] = 0x20  # ideographic space
_WIDE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_WIDTH_TABLE)) + "]+")


def _narrow(match: re.Match) -> str:
    return match.group().translate(_WIDTH_TABLE)


# --- rule 5: whitespace ---------------------------------------------------------------------
_LINE_BREAK = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S\n ]")  # several blanks, or one that is not ' '
_AROUND_NEWLINE = re.compile(r" ?\n[ \n]*")

# --- rule 6: CJK spacing ---------------------------------------------------------------------
# After rule 5 every blank is a single ' ', so the pattern can start with that literal (a fast
# scan); the callback looks one character back. Matches are rare in Chinese text.
_SPACE_BEFORE_CJK = re.compile(f" +(?=[{CJK}])")
_CJK_CHAR = re.compile(f"[{CJK}]")
_ADJACENT_PAIR = re.compile(r"(.)\1", re.DOTALL)


def _join_if_after_cjk(match: re.Match) -> str:
    start = match.start()
    return "" if start and _CJK_CHAR.match(match.string, start - 1) else match.group()


# --- fast path ---------------------------------------------------------------------------------
# Every character rules 2, 3 and 5 would touch, except ' ' and '\n'. Most rows contain none,
# so one C scan lets them skip those rules (their output would equal their input).
_NEEDS_WORK = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\xa0\u00ad\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064"
    "\u2066-\u2069\u3000\ufeff\ufffd" + "".join(re.escape(chr(c)) for c in sorted(_WIDTH_TABLE)) + "]"
)

# --- max_chars splitting ----------------------------------------------------------------------
# A sentence ends after 。！？!?｡ (closing quotes and brackets stay with it) or at a line break.
_SENTENCE = re.compile(r"[^\n。！？!?｡]*(?:[。！？!?｡]+[”’」』）)\]]*|\n|$)")


@dataclass
class CleanConfig:
    """Cleaning rules (each switchable) and filters (each disabled by 0 / None)."""

    strip_html: bool = True
    remove_control: bool = True
    normalize_width: bool = True
    traditional_to_simplified: bool = False  # needs opencc-python-reimplemented
    collapse_whitespace: bool = True
    join_cjk_spaces: bool = True
    # Filters, applied to the cleaned text:
    min_chars: int = 6  # non-whitespace characters; below -> "too_short"
    # Han characters / (Han characters + Latin-script words); digits and symbols are
    # neutral. A Latin word counts like one Han character (both are about one token).
    min_cjk_share: float = 0.3  # below -> "low_cjk_share"
    max_repeated_line_share: float | None = 0.3  # share of lines repeating an earlier line
    max_char_run: int | None = 8  # longest run of one letter or Han char ("哈哈哈…")
    # Share of the most frequent non-space character ("!!!!!!", "啊哈啊哈啊哈"), checked on
    # texts of at most top_char_max_chars non-space characters: that is where it matters
    # (long texts dominated by one character are caught by the run and line rules).
    max_top_char_share: float | None = 0.5
    top_char_max_chars: int = 100
    max_chars: int | None = None  # longer texts are split at sentence ends, not dropped

    def check(self) -> None:
        if self.min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, got {self.min_chars}")
        if not 0.0 <= self.min_cjk_share <= 1.0:
            raise ValueError(f"min_cjk_share must be in [0, 1], got {self.min_cjk_share}")
        share = self.max_repeated_line_share
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"max_repeated_line_share must be in [0, 1], got {share}")
        if self.max_char_run is not None and self.max_char_run < 1:
            raise ValueError(f"max_char_run must be >= 1, got {self.max_char_run}")
        top = self.max_top_char_share
        if top is not None and not 0.0 < top <= 1.0:
            raise ValueError(f"max_top_char_share must be in (0, 1], got {top}")
        if self.top_char_max_chars < 0:
            raise ValueError(f"top_char_max_chars must be >= 0, got {self.top_char_max_chars}")
        if self.max_chars is not None and self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")
        # only that the package is there: the converter (its dictionaries) is built once, by Cleaner
        if self.traditional_to_simplified and importlib.util.find_spec("opencc") is None:
            raise ValueError(OPENCC_MISSING)


OPENCC_MISSING = (
    "traditional_to_simplified needs the opencc package: "
    "pip install opencc-python-reimplemented (the project's 'opencc' extra)"
)


def _load_opencc():
    try:
        import opencc
    except ImportError:
        raise ValueError(OPENCC_MISSING) from None
    return opencc.OpenCC("t2s")


class Cleaner:
    """Cleans and filters Documents; build once per process, call per document."""

    def __init__(self, config: CleanConfig):
        config.check()
        self.config = config
        self._t2s = _load_opencc() if config.traditional_to_simplified else None
        run = config.max_char_run
        if run is not None:
            self._run = re.compile(rf"([^\W\d_])\1{{{run},}}")
            # A run of run+1 equal chars leaves >= 3 equal neighbours in every stride-k
            # sample, k = (run+1)//3: a cheap exact pre-check on a third of the text or less.
            # The pre-check matches any character (a superset, so still exact): without the
            # letter class the regex engine runs 2.4x faster, and only the rare hits pay for
            # the full check (benchmarks/profile_clean.py).
            self._run_stride = (run + 1) // 3
            self._triple = re.compile(r"(.)\1\1", re.DOTALL)

    # --- cleaning -----------------------------------------------------------------------
    def clean_text(self, text: str) -> str:
        config = self.config
        if config.strip_html:
            if "<" in text:
                text = _HTML.sub(_replace_tag, text)
            if "&" in text:
                text = html.unescape(text)
        special = _NEEDS_WORK.search(text) is not None
        if special and config.remove_control:
            text = _CONTROL.sub("", text)
        if special and config.normalize_width:
            text = _WIDE.sub(_narrow, text)
        if self._t2s is not None:
            text = self._t2s.convert(text)
        if config.collapse_whitespace:
            if special:
                text = _LINE_BREAK.sub("\n", text)
            if special or "  " in text:
                text = _SPACES.sub(" ", text)
            if " \n" in text or "\n " in text or "\n\n" in text:
                text = _AROUND_NEWLINE.sub("\n", text)
            text = text.strip(" \n")
        if config.join_cjk_spaces and " " in text:
            text = _SPACE_BEFORE_CJK.sub(_join_if_after_cjk, text)
        return text

    # --- filters ------------------------------------------------------------------------
    def drop_reason(self, text: str) -> str | None:
        """None to keep `text` (already cleaned), else the first reason from DROP_REASONS."""
        config = self.config
        dense = text.replace(" ", "").replace("\n", "")
        if not dense:
            return "empty"
        if len(dense) < config.min_chars:
            return "too_short"
        if self._has_long_run(text) or self._top_char_share_over(dense):
            return "repetitive_chars"
        if config.max_repeated_line_share is not None and "\n" in text:
            lines = text.split("\n")
            repeated = len(lines) - len(set(lines))
            if repeated / len(lines) > config.max_repeated_line_share:
                return "repetitive_lines"
        if config.min_cjk_share > 0 and _cjk_share_below(text, config.min_cjk_share):
            return "low_cjk_share"
        return None

    def _has_long_run(self, text: str) -> bool:
        if self.config.max_char_run is None:
            return False
        if self._run_stride >= 2 and not self._triple.search(text[:: self._run_stride]):
            return False
        return self._run.search(text) is not None

    def _top_char_share_over(self, dense: str) -> bool:
        limit = self.config.max_top_char_share
        if limit is None or limit >= 1.0:
            return False
        n = len(dense)
        if n > self.config.top_char_max_chars:
            return False
        if limit >= 0.5:
            # A character with more than half of the text sits next to itself somewhere,
            # unless it alternates starting at position 0: those are the only candidates
            # (usually one or two), so no Counter of every character is needed.
            if dense.count(dense[0]) / n > limit:
                return True
            for candidate in set(_ADJACENT_PAIR.findall(dense)):
                if dense.count(candidate) / n > limit:
                    return True
            return False
        return max(Counter(dense).values()) / n > limit

    # --- splitting ----------------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """Pieces of at most max_chars, cut after sentence ends; a longer sentence is cut hard."""
        limit = self.config.max_chars
        if limit is None or len(text) <= limit:
            return [text]
        pieces: list[str] = []
        current = ""
        for sentence in _SENTENCE.findall(text):
            if not sentence:
                continue
            if len(current) + len(sentence) <= limit:
                current += sentence
                continue
            pieces.append(current)
            while len(sentence) > limit:
                pieces.append(sentence[:limit])
                sentence = sentence[limit:]
            current = sentence
        pieces.append(current)
        stripped = (piece.strip(" \n") for piece in pieces)
        return [piece for piece in stripped if piece]

    def pieces(self, text: str) -> tuple[list[str], str | None]:
        """Clean one text -> (the texts of its pieces to keep, None) or ([], reason)."""
        text = self.clean_text(text)
        reason = self.drop_reason(text)
        if reason is not None:
            return [], reason
        return self.split(text), None

    def __call__(self, doc: Document) -> tuple[list[Document], str | None]:
        """Clean one document -> (pieces to keep, None) or ([], reason). Pieces keep the
        document's source and row, in text order."""
        texts, reason = self.pieces(doc.text)
        return [Document(text=piece, source=doc.source, row=doc.row) for piece in texts], reason


def _cjk_share_below(text: str, minimum: float) -> bool:
    """cjk_share(text) < minimum, without counting every Han character when a prefix of the
    text already holds enough of them (the common case: Chinese text, a few Latin words)."""
    other = len(_LATIN_WORD.findall(text))
    if not other:
        return _HAN_RUN.search(text) is None
    # One more than the Han count at which the share reaches `minimum`: a safe margin.
    enough = int(minimum * other / (1.0 - minimum)) + 1 if minimum < 1.0 else len(text) + 1
    window = 4 * enough + 64
    if window < len(text) and sum(map(len, _HAN_RUN.findall(text, 0, window))) >= enough:
        return False
    return cjk_share(text) < minimum


def cjk_share(text: str) -> float:
    """Han characters / (Han characters + Latin-script words); 0.0 when there are none."""
    other = len(_LATIN_WORD.findall(text))
    if not other:  # the common case in Chinese text: no need to count the Han characters
        return 1.0 if _HAN_RUN.search(text) else 0.0
    han = sum(map(len, _HAN_RUN.findall(text)))
    return han / (han + other)
