"""Strategic-gram lexicons: named, hashed, normalised phrase lists (method.md section 1).

A lexicon is versioned data: every output that used one records its ``name`` and ``hash``.
Phrases are normalised once here (lower case, U+2019 -> "'", whitespace runs -> one space), so the
hash only changes when the matching behaviour can change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Union

from reasonlens.errors import ReasonlensError

PRESETS = ("paper",)
_WS = re.compile(r"\s+")


def normalize_phrase(phrase: str) -> str:
    """Canonical form of a gram: lower case, typographic apostrophe -> "'", single spaces, stripped."""
    return _WS.sub(" ", phrase.replace("\u2019", "'").lower()).strip()


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """A named tuple of canonical, unique phrases (order kept from the source).

    Examples
    --------
    >>> Lexicon("demo", ("but wait", "so")).hash == Lexicon("other", ("but wait", "so")).hash
    True
    """

    name: str
    phrases: tuple[str, ...]

    @property
    def hash(self) -> str:
        """Short sha256 of the phrases (not the name): same phrases, same matching, same hash."""
        blob = "\n".join(self.phrases).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:12]

    def __len__(self) -> int:
        return len(self.phrases)


LexiconSpec = Union[str, Path, Iterable[str], Lexicon]


def _is_comment(line: str) -> bool:
    """``# text`` or a lone ``#`` is a comment; ``## step`` is a phrase (the paper lexicon has it)."""
    return line == "#" or line.startswith("# ")


def _parse_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not _is_comment(line)]


def _unique_normalized(phrases: Iterable[str], source: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for phrase in phrases:
        if not isinstance(phrase, str):
            raise ReasonlensError(
                f"lexicon {source}: phrase {phrase!r} is a {type(phrase).__name__}, expected a string")
        norm = normalize_phrase(phrase)
        if norm:
            out.setdefault(norm, None)
    if not out:
        raise ReasonlensError(
            f"lexicon {source} has no phrases: expected at least one non-empty phrase "
            "(one per line; lines starting with '# ' are comments)")
    return tuple(out)


def _read_file(path: Path) -> Lexicon:
    if not path.is_file():
        raise ReasonlensError(
            f"lexicon file {str(path)!r} does not exist: expected a preset name {list(PRESETS)} "
            "or a text file with one phrase per line")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ReasonlensError(f"lexicon file {str(path)!r} is not UTF-8 text (byte {err.start}: {err.reason}); "
                              "re-save it as UTF-8, one phrase per line") from None
    return Lexicon(_recorded_name(text) or path.stem, _unique_normalized(_parse_lines(text), f"file {str(path)!r}"))


def _recorded_name(text: str) -> str | None:
    """The name in a ``# lexicon: NAME`` header line, as `write_lexicon` writes it."""
    for line in text.splitlines():
        if line.startswith("# lexicon: "):
            return line[len("# lexicon: "):].strip() or None
        if line.strip() and not _is_comment(line.strip()):
            return None
    return None


def _read_preset(name: str) -> Lexicon:
    text = resources.files("reasonlens.hierarchy").joinpath(f"lexicons/{name}.txt").read_text("utf-8")
    return Lexicon(name, _unique_normalized(_parse_lines(text), f"preset {name!r}"))


def load_lexicon(spec: LexiconSpec = "paper") -> Lexicon:
    """Resolve a lexicon from a preset name, a file path, a list of phrases or a Lexicon.

    Parameters
    ----------
    spec : str, Path, list of str or Lexicon
        ``"paper"`` (arXiv 2509.03646 Appendix A Listing 1, 249 phrases); a path to a UTF-8 text
        file with one phrase per line (``# `` comment lines, blank lines ignored; name = file stem);
        an iterable of phrases (name ``"custom"``); or a Lexicon (returned unchanged).

    Returns
    -------
    Lexicon with normalised, de-duplicated phrases.

    Examples
    --------
    >>> len(load_lexicon("paper"))
    249
    >>> load_lexicon(["But  Wait", "so"]).phrases
    ('but wait', 'so')
    """
    if isinstance(spec, Lexicon):
        return spec
    if isinstance(spec, str) and spec in PRESETS:
        return _read_preset(spec)
    if isinstance(spec, (str, Path)):
        return _read_file(Path(spec).expanduser())
    try:
        phrases = list(spec)
    except TypeError:
        raise ReasonlensError(
            f"lexicon {spec!r} is a {type(spec).__name__}: expected a preset name {list(PRESETS)}, "
            "a file path, a list of phrases or a Lexicon") from None
    return Lexicon("custom", _unique_normalized(phrases, "given as a list"))


def write_lexicon(path: str | Path, lexicon: Lexicon, header: dict | None = None) -> Path:
    """One phrase a line after ``# key: value`` comment lines (name and hash first); `load_lexicon`
    reads it back with the same name and hash."""
    import json

    from reasonlens.records import write_text

    header = {"lexicon": lexicon.name, "hash": lexicon.hash, **(header or {})}
    lines = [f"# {key}: {value if isinstance(value, str) else json.dumps(value, default=str)}"
             for key, value in header.items()]
    return write_text(path, "\n".join(lines + list(lexicon.phrases)) + "\n")
