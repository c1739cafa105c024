"""Map a generative model's free-text answer to the index of a multiple-choice option.

Options are letters (A), (B), ... whose option texts are "Image k" (img2afc: Image 2, Image 3;
other image tasks: Image 1..N) or "Caption k" (text2afc).  ``parse_answer`` returns the option
index, or None when the answer is empty, names no valid option, or is ambiguous.

Clean-up first: NFKC (full-width "（Ａ）" -> "(A)"), markdown marks dropped, only the text after the
last ``</think>`` and, if present, only the content of ``<answer>...</answer>`` is read, and echoes of
the option list are cut out: runs of two or more "label + its own option text" pairs with nothing but
separators between them ("(A) Image 1 (B) Image 2", "A. Image 1\nB. Image 2", "(A) Image 1 or
(B) Image 2").  A single labelled option ("(B) Image 2 is sharper than (A) Image 1") is kept.  Then,
first rule that applies wins:

1. Explicit statement: a cue and X ("answer is X", "Answer: X", "correct option: X", "I'd choose X",
   "the odd one out is X", ``\\boxed{X}``) or X and a claim ("X is the odd one out", "X is the
   correct answer"); the last one counts.  X is an option letter, option text or number.
2. Leading answer: the response opens with an option letter ("B", "(B)", "B) Image 3", "B is ...",
   not the article in "A photo ...") or with option text that stands alone ("Image 3.") or that is
   compared with another option in its own clause ("Image 2 has better quality than Image 1; ...").
   A letter whose own option text disagrees ("B) Image 2" in img2afc) gives None.
3. Letters anywhere: "(B)", "option B", a stand-alone capital "B" (not "A dog", never "I think").
4. Option text anywhere: "Image 3", "image three", "Image #3", "the third image", "Caption 2",
   "the first one", "the left image" / "on the right" (left = first option, right = last).

Comparisons pick the subject X of "X <better> than Y" (better, sharper, more similar, higher quality,
...) and Y in "X <worse> than Y" (worse, darker, blurrier, less aligned, lower quality, "not as bright
as"): every question asks for the better/more one.  "less"/"lower" are worse only before what a
question asks about ("lower quality"), not before a flaw ("less noise than Y" picks X).  Comparisons
are read only with two options: among more, one comparison picks no winner (and in OOO "less similar"
means more odd), so there "than Y" only makes Y a foil, as below.

In 3 and 4 a mention is not a choice when it is a foil (right after "than", "not", "from", "over",
"compared to", "instead of", ..., or joined by "and"/"or" to such a foil; the X of "X <worse> than Y")
or sits in a reason clause ("because Image 1 ...", ", as Image 1 ...").  If the remaining mentions
name one option, that is the answer; if they name several, the mentions after the last conclusion
word (", so", "therefore", "thus", ...) decide; otherwise None.
Rules 1 and 2 return None when they name an invalid option ("C" with two options, "Image 1" -- the
reference -- in img2afc).  Lower-case letters count only alone ("b"), in parentheses ("(b)", "b)")
or after an answer cue ("answer: b"); a whole-answer number ("2") is read as the image/caption number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

__all__ = ["option_names", "parse_answer"]

_NOUNS = {"image": r"image|img|picture|pic|photo", "caption": r"caption|description|sentence|text"}
_TASK_NOUN = {"img2afc": "image", "it2afc": "image", "iqa": "image", "paa": "image", "ooo": "image",
              "text2afc": "caption"}  # fmt: skip
_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
_NUM = r"\d{1,2}|" + "|".join(_WORDS)
_ORD = r"\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORDINALS)
INVALID = -1  # a mention of something that is not an option (e.g. the reference "Image 1")

# A stand-alone capital letter counts as an option after these words ("B is ..."), not before a noun ("A dog").
_VERB = r"is|was|would|seems|looks|appears|has|shows|matches|fits|because|since|as"
_AFTER_LETTER = rf"(?:\s*(?:$|[.,:;!?)\]\n]|[-–—])|\s+(?:{_VERB})\b)"
_AFTER_LOWER = r"\s*(?:$|[.,:;!?)\]\n])"
_AFTER_MENTION = rf"(?:{_AFTER_LETTER}|\s+(?:and|or|nor|vs)\b)"  # "between A and B." names both
_DEMOTE = re.compile(
    r"\b(?:than|not|neither|nor|from|over|vs|versus|compared\s+(?:to|with)|instead\s+of|unlike|except|rather\s+than)"
    r"\W*(?:the\s+|to\s+)?(?:option\s+|choice\s+)?\W*$",
    re.IGNORECASE,
)
_REASON = re.compile(r"^\s*as\b|\b(?:because|since|given\s+that|due\s+to)\b", re.IGNORECASE)
_CONCLUSION = re.compile(
    r"(?:^|[,;.!?\n])\s*(?:and\s+)?so\b|\b(?:therefore|thus|hence|overall|in\s+conclusion|in\s+summary|ultimately|finally)\b",
    re.IGNORECASE,
)
_STATEMENT = re.compile(
    r"(?:\b(?:final\s+|correct\s+|right\s+|best\s+|my\s+)?answer\b|\b(?:correct|right|best|final|my)\s+(?:option|choice)\b)"
    r"\s*(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be|has\s+to\s+be|here\s+is)\b)?\s*(?:[:=]|[-–—]+)?\s*"
    r"|\bI(?:\s+would|\s+will|'d|’d)?\s+(?:choose|pick|select|go\s+with|say)\b\s*:?\s*"
    r"|\bodd[\s-]+(?:one[\s-]+out|one|image)\b\s*(?:(?:is|would\s+be)\b)?\s*[:=]?\s*"
    r"|答案\s*(?:是|为)?\s*:?\s*",
    re.IGNORECASE,
)
# After an option: "X is the odd one out", "X is the correct answer".
_CLAIM = re.compile(
    r"\s*(?:is|would\s+be)\s+(?:the\s+)?(?:odd[\s-]+(?:one|image)|(?:(?:correct|right|best|final)\s+)?answer"
    r"|(?:correct|right|best|final)\s+(?:option|choice))\b|\s*is\s+correct\b",
    re.IGNORECASE,
)
# Comparisons of two options.  Every question asks for the better/more one, so "X is worse than Y" picks Y;
# "less"/"lower" are worse only before what a question asks about ("lower quality", not "less noise").
_ASKED = (
    r"(?:quality|similar|close|alike|align|accura|relevan|match|fit|descripti|bright|colou?rful|vivid|contrast"
    r"|sharp|clear|detail)\w*"
)
_BETTER = rf"better|sharper|brighter|clearer|closer|(?:more|higher|greater)\s+(?:\w+\s+)?{_ASKED}"
_WORSE = (
    rf"(?:worse|poorer|inferior|darker|dimmer|duller|blurrier|noisier|(?:less|lower)\s+(?:\w+\s+)?{_ASKED}"
    r"|more\s+(?:blurr|nois|distort|pixelat|grain)\w*)\b[^,;.!?\n]*?\bthan"
    rf"|\bnot\s+(?:as|so)\s+(?:\w+\s+)?(?:{_ASKED}|good|well)\b[^,;.!?\n]*?\bas"
)
_COMPARISON = re.compile(
    rf"\b(?:(?P<better>(?:{_BETTER})\b[^,;.!?\n]*?\bthan)|(?P<worse>{_WORSE}))\s+(?:the\s+)?", re.IGNORECASE
)
_WORSE_THAN = re.compile(rf"\b(?:{_WORSE})\s+(?:the\s+)?$", re.IGNORECASE)  # "X is darker than |Y"
_SEPARATOR = re.compile(r"\s*[,;/|]?\s*(?:(?:and|or|nor|vs\.?|versus)\s+)?", re.IGNORECASE)  # within an echo
_BOXED = re.compile(r"\\boxed\{\s*([^{}]*)\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_HEAD_LETTER = re.compile(r"([(\[]\s*)?([A-Za-z])(?![A-Za-z])(\s*[)\]])?")
_WHOLE_NUMBER = re.compile(r"[#(\[]?\s*(\d{1,2})\s*[)\]]?\s*\.?\s*$")


@dataclass(frozen=True)
class _Task:
    family: str
    n: int
    text: re.Pattern  # option text anywhere: "Image 3", "the third image", "on the left", ...

    def number_to_index(self, k: int) -> int:
        first = 2 if self.family == "img2afc" else 1
        return k - first if first <= k < first + self.n else INVALID

    def index_of_text(self, m: re.Match) -> int:
        g = m.groupdict()
        if g["num"]:
            return self.number_to_index(_to_int(g["num"]))
        if g["ord"]:
            return self.number_to_index(_to_int(g["ord"]))
        side = (g["side1"] or g["side2"] or g["side3"]).lower()
        if side == "left":
            return 0
        if side == "right":
            return self.n - 1
        return 1 if self.n == 3 else INVALID  # middle / center

    def index_of_letter(self, letter: str) -> int:
        i = ord(letter.upper()) - ord("A")
        return i if 0 <= i < self.n else INVALID


def _to_int(word: str) -> int:
    word = word.lower()
    if word in _WORDS:
        return _WORDS.index(word) + 1
    if word in _ORDINALS:
        return _ORDINALS.index(word) + 1
    return int(re.match(r"\d+", word).group())


@cache
def _task(task: str, n_options: int) -> _Task:
    family = re.split(r"[_\-.:/ ]", task.strip().lower())[0]
    if family not in _TASK_NOUN:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(_TASK_NOUN)}")
    if n_options < 2:
        raise ValueError(f"n_options must be >= 2, got {n_options}")
    noun = _NOUNS[_TASK_NOUN[family]]
    # "the second one" is ambiguous in img2afc (second image, or second of the two candidates?).
    ordinal_noun = noun if family == "img2afc" else noun + "|one"
    side = r"left|right|middle|center|centre"
    text = re.compile(
        rf"\b(?:{noun})[\s\-_]*(?:(?:no\.?|number|#)\s*)?(?P<num>{_NUM})\b(?!\s*(?:st|nd|rd|th)\b)"
        rf"|\b(?P<ord>{_ORD})\s+(?:{ordinal_noun})\b"
        rf"|\b(?P<side1>{side})(?:most|-hand|\s+hand)?(?:\s+side)?\s+(?:one|{noun})\b"
        rf"|\b(?:on|in|at)\s+the\s+(?P<side2>{side})\b"
        rf"|^\s*(?P<side3>left|right)\W*$",
        re.IGNORECASE,
    )
    return _Task(family, n_options, text)


def option_names(task: str, n_options: int) -> list[str]:
    """The option texts in order, e.g. ("img2afc", 2) -> ["Image 2", "Image 3"]."""
    t = _task(task, n_options)
    noun = _TASK_NOUN[t.family].capitalize()
    first = 2 if t.family == "img2afc" else 1
    return [f"{noun} {first + i}" for i in range(n_options)]


def _clean(response: str) -> str:
    s = unicodedata.normalize("NFKC", response or "")
    if "</think>" in s:
        s = s.rsplit("</think>", 1)[1]
    tag = _ANSWER_TAG.search(s)
    if tag:
        s = tag.group(1)
    s = re.sub(r"[*`~]+|^\s*#+\s*|^\s*>\s*", "", s, flags=re.MULTILINE)  # markdown emphasis, headings, quotes
    s = re.sub(r"(?<!\w)_+|_+(?!\w)", "", s)  # __bold__ / _italic_
    s = re.sub(r"[ \t\r\f\v]+", " ", s)
    return re.sub(r"\s*\n\s*", "\n", s).strip()


def _cut_option_list(s: str, t: _Task) -> str:
    """Remove echoed option lists: runs of "label + its own option text" pairs with only separators between them
    that name two options or more."""
    label = re.compile(r"(?:[(\[]\s*)?([A-Za-z])\s*[)\].:]\s*")  # starts at the bracket or the letter, not before
    runs: list[list[tuple[int, int, str]]] = []
    for m in label.finditer(s):
        if m.start() > 0 and s[m.start() - 1].isalnum():
            continue
        txt = t.text.match(s, m.end())
        if txt and t.index_of_letter(m.group(1)) == t.index_of_text(txt) != INVALID:
            pair = (m.start(), txt.end(), m.group(1).upper())
            if runs and _SEPARATOR.fullmatch(s, runs[-1][-1][1], m.start()):
                runs[-1].append(pair)
            else:
                runs.append([pair])
    for run in reversed(runs):
        if len({letter for _, _, letter in run}) > 1:
            s = s[: run[0][0]] + " " + s[run[-1][1] :]
    return s.strip()


def _head(s: str, t: _Task, *, statement: bool) -> int | None:
    """Option named at the very start of ``s``: an index, INVALID, or None (nothing there)."""
    s = re.sub(r"^(?:the\s+)?(?:option|choice)\b\s*:?\s*", "", s.lstrip(), flags=re.IGNORECASE)
    m = _HEAD_LETTER.match(s)
    if m:
        _, letter, closed = m.groups()
        rest = s[m.end():]
        ok = bool(closed)
        if not ok and letter.isupper():
            after = r"\s*(?:$|[.):\n])" if letter == "I" else _AFTER_LETTER
            ok = bool(re.match(after, rest)) or bool(t.text.match(rest.lstrip()))
        elif not ok:
            ok = bool(re.match(_AFTER_LOWER, rest))
        if ok and re.match(r"\s*(?:,|/|or\b|and\b)\s*\(?[A-HJ-Z]\)?(?![A-Za-z])", rest):
            return INVALID  # "A or B", "A, B or C"
        if ok:
            index = t.index_of_letter(letter)
            echo = re.sub(r"^[\s.:)\-–—,]*", "", rest)
            txt = t.text.match(echo)
            if txt and t.index_of_text(txt) != index:
                echoed = re.match(r"\s*(?:$|[.,;:!)\n]|[-–—])", echo[txt.end():])
                if echoed and t.index_of_text(txt) != INVALID:
                    return INVALID  # "B) Image 2" in img2afc: the letter and its echoed text disagree
                return index  # "B. Image 1 is darker than Image 2": what follows is about another option
            compared = _compared(echo[txt.end():] if txt else rest, index, t)
            return index if compared is None else compared
    m = re.match(r"(?:the\s+)?", s, re.IGNORECASE)
    txt = t.text.match(s, m.end())
    if txt:
        index = t.index_of_text(txt)
        compared = _compared(s[txt.end():], index, t)
        if compared is not None:
            return compared
        if statement or re.match(r"\s*(?:$|[.:;!)\n]|[-–—])", s[txt.end():]):
            return index
    num = re.match(r"[#(\[]?\s*(\d{1,2})\s*[)\]]?(?=\s*(?:$|[.,;:!\n]))", s) if statement else _WHOLE_NUMBER.match(s)
    if num:
        return t.number_to_index(int(num.group(1)))
    return None


def _compared(rest: str, index: int, t: _Task) -> int | None:
    """The choice when ``rest``, the text right after option ``index``, compares it with the other option in its clause.

    "... is sharper than Image 1" -> index, "... is darker than (B)" -> the other; None: no such comparison.
    """
    m = _COMPARISON.search(rest)
    if t.n != 2 or not m or re.search(r"[,;.!?\n]", rest[: m.start()]) or t.text.search(rest[: m.start()]):
        return None
    other = _head(rest[m.end() :], t, statement=True)
    if index == INVALID or other in (None, INVALID, index):
        return None
    return index if m.group("better") else other


_Mention = tuple[int, int, int]  # start, end, option index (or INVALID)


def _letter_mentions(s: str, t: _Task) -> list[_Mention]:
    """Option letters anywhere: "(B)", "option B", a stand-alone capital."""
    found: dict[int, tuple[int, int]] = {}  # letter position -> span of the mention
    for m in re.finditer(r"(?<![A-Za-z])[(\[]\s*([A-Za-z])\s*[)\]]", s):
        found[m.start(1)] = m.span()
    for m in re.finditer(r"\b(?:option|choice)\s*[:#]?\s*\(?([A-Za-z])\b\)?", s, re.IGNORECASE):
        if m.group(1).isupper() or re.match(_AFTER_LOWER, s[m.end(1):]):
            found[m.start(1)] = m.span()
    for m in re.finditer(r"(?<![\w'’\-])([A-Z])(?![\w'’\-])", s):
        after = r"\s*(?:$|[.):\n])" if m.group(1) == "I" else _AFTER_MENTION
        if re.match(after, s[m.end():]):
            found.setdefault(m.start(1), m.span())
    return [(start, end, t.index_of_letter(s[pos])) for pos, (start, end) in sorted(found.items())]


def _foils(s: str, mentions: list[_Mention], n: int) -> set[int]:
    """Starts of mentions that are foils ("than Image 1", "from Image 1 and Image 3", the X of "X is darker than Y")
    or reasons ("because A ...")."""
    foils: set[int] = set()
    previous, prev_end = None, 0
    for start, end, _ in mentions:
        clause = re.split(r"[,;.!?\n]", s[:start])[-1]
        coordinated = previous in foils and re.fullmatch(r"\s*,?\s*(?:and|or|nor)\s+(?:the\s+)?", s[prev_end:start])
        worse_than = n == 2 and previous is not None and _WORSE_THAN.search(s[prev_end:start])
        if worse_than:
            foils.add(previous)
        elif _DEMOTE.search(s[max(0, start - 30):start]) or coordinated:
            foils.add(start)
        if _REASON.search(clause):
            foils.add(start)
        previous, prev_end = start, end
    return foils


def _decide(s: str, mentions: list[_Mention], n: int) -> int | None:
    """One option among the mentions that are choices; after the last conclusion word if need be."""
    foils = _foils(s, mentions, n)
    choices = [(p, i) for p, _, i in mentions if i != INVALID and p not in foils]
    if len({i for _, i in choices}) > 1:
        conclusions = list(_CONCLUSION.finditer(s))
        if conclusions:
            start = conclusions[-1].end()
            stop = re.compile(r"[.!?\n](?:\s|$)").search(s, start)
            end = stop.start() if stop else len(s)
            choices = [(p, i) for p, i in choices if start <= p < end]
    options = {i for _, i in choices}
    return options.pop() if len(options) == 1 else None


def parse_answer(response: str, task: str, n_options: int) -> int | None:
    """Index of the option the response chooses, or None (empty, invalid or ambiguous)."""
    t = _task(task, n_options)
    s = _cut_option_list(_clean(response), t)
    if not s:
        return None

    letters = _letter_mentions(s, t)
    texts = [(m.start(), m.end(), t.index_of_text(m)) for m in t.text.finditer(s)]
    stated = [(m.start(), _head(m.group(1), t, statement=True)) for m in _BOXED.finditer(s)]
    stated += [(m.start(), _head(s[m.end():], t, statement=True)) for m in _STATEMENT.finditer(s)]
    stated += [(start, i) for start, end, i in letters + texts if _CLAIM.match(s, end)]
    stated = sorted((p, i) for p, i in stated if i is not None)
    if stated:
        return None if stated[-1][1] == INVALID else stated[-1][1]

    lead = _head(s, t, statement=False)
    if lead is not None:
        return None if lead == INVALID else lead

    if any(i != INVALID for _, _, i in letters):
        return _decide(s, letters, t.n)
    return _decide(s, texts, t.n)
