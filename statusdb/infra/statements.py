"""Split a migration file into its statements, as yoyo does, without sqlparse's cost.

yoyo splits every `.sql` migration with `sqlparse.split` each time it loads it: a pure-Python
lexer that took ~0.45 s of CPU for statusdb's ~1.4 MB of migrations, paid by every `statusdb
migrate`, `rollback` and `demo` (and by each test that migrates). `split` finds the same
statement boundaries in ~1-2 % of that time for the SQL statusdb writes, and answers None for
anything it does not model exactly, so that the caller falls back to sqlparse:

* statements end at a `;` outside comments, quoted strings and identifiers, dollar-quoted
  bodies and parentheses, as in sqlparse; after the `;`, blanks and `--` comments on the same
  lines stay with the statement (sqlparse's "consume whitespace"), and each result is stripped;
* None for the constructs where sqlparse's lexer differs from PostgreSQL's or tracks more
  state: a bare BEGIN, DECLARE or GO (sqlparse's block and batch rules), a backslash before a
  closing quote, `# ` comments, hint comments (`--+`, `/*+`), nested `/* */`, a comment right
  after an operator character, a word glued to a hex literal or a `%s` placeholder, backticks,
  backslash commands, `WITH'`, carriage returns, an unclosed quote or comment, a `;` inside
  parentheses.

tests/test_migration_statements.py checks that `split` gives exactly sqlparse's statements for
every migration and rollback file (a new migration that `split` would cut differently fails
there), and that the unsupported constructs answer None.
"""

from __future__ import annotations

import re

_INTERESTING = re.compile(r"--|/\*|['\"();\[\\`\u00b4#\r$]")
"""The characters where a token that matters starts; everything between them is plain code."""

_DOLLAR_TAG = re.compile(r"\$(?:[_A-ZÀ-Ü]\w*)?\$", re.IGNORECASE | re.UNICODE)
"""sqlparse's dollar-quote delimiter (`$tag$`); it cannot open after a word character, `"`
or `$`, and the body ends at the next occurrence of the same tag."""

_NO_DOLLAR_OPENER_AFTER = re.compile(r'[\w"$]', re.UNICODE)
_BRACKET_NAME = re.compile(r"\[[^\]\[]+\]")
"""sqlparse lexes `[...]` not after a word character, `]` or `)` as one name token."""
_NO_BRACKET_NAME_AFTER = re.compile(r"[\w\])]", re.UNICODE)

_UNMODELLED_WORDS = re.compile(
    r"(?<![^\W\d])(?:BEGIN|DECLARE|GO)\b|0x[\dA-F]+\w|%(?:\(\w+\))?s\w", re.IGNORECASE | re.UNICODE
)
"""Words that change sqlparse's splitting: its blocks (BEGIN ... END, DECLARE) and batches (GO),
also right after a digit or a hex literal (`0x1FGO` is a number and GO for sqlparse)."""
_ENDS_WITH_WITH = re.compile(r"WITH\Z", re.IGNORECASE)
_OPERATOR_CHARS = frozenset("-+/@#%^&|")
"""sqlparse's operator runs (`[+/@#%^&|^-]+`) can swallow the start of a comment after them."""


def split(text: str) -> list[str] | None:
    """The statements of `text` as `sqlparse.split` gives them, or None where unsure."""
    if "\r" in text:
        return None
    statements: list[str] = []
    start = 0  # where the current statement begins
    depth = 0  # parentheses open in the current statement
    code_from = 0  # where the current run of code (outside comments and quotes) begins
    pos = 0
    while True:
        found = _INTERESTING.search(text, pos)
        if found is None:
            break
        mark = found.group()
        at = found.start()
        opener = None
        if mark in ("$", "["):
            if mark == "$" and at > 0 and text[at - 1] == "#":
                return None  # `x#$$`: one word for sqlparse, `#` then a body for PostgreSQL
            opener = _opener(text, at, mark)
            if opener is None:  # `$1`, a `$` inside a word, a subscript: plain code
                pos = at + 1
                continue
        elif mark in ("(", ")", ";", "#"):
            if mark == "(":
                depth += 1
            elif mark == ")":
                depth -= 1
            elif mark == "#":
                if text.startswith("# ", at):
                    return None  # a comment for sqlparse, an operator for PostgreSQL
            else:
                if depth > 0:
                    return None
                after = _after_trailing_comments(text, at + 1)
                if after is None:
                    return None
                statements.append(text[start:after].strip())
                start, depth = after, 0
                pos = after
                continue
            pos = at + 1
            continue
        # A comment, a quoted string or identifier, a dollar-quoted body or a bracketed name:
        # the run of code before it ends here.
        code = text[code_from:at]
        if _UNMODELLED_WORDS.search(code):
            return None
        skipped = _skip(text, at, mark, code, opener)
        if skipped is None:
            return None
        pos = code_from = skipped
    if _UNMODELLED_WORDS.search(text, code_from):
        return None
    rest = text[start:]
    if rest.strip():
        statements.append(rest.strip())
    return statements


def _opener(text: str, at: int, mark: str) -> re.Match[str] | None:
    """The `$tag$` that opens a dollar-quoted body, or the `[...]` name token, at `at` (a `$`
    or `[`); None where sqlparse reads the character as plain code."""
    if mark == "$":
        found, not_after = _DOLLAR_TAG.match(text, at), _NO_DOLLAR_OPENER_AFTER
    else:
        found, not_after = _BRACKET_NAME.match(text, at), _NO_BRACKET_NAME_AFTER
    if found is None or (at > 0 and not_after.match(text[at - 1])):
        return None
    return found


def _skip(text: str, at: int, mark: str, code: str, opener: re.Match[str] | None) -> int | None:
    """Past the comment, quoted text, body or bracketed name at `at`; None where unsure."""
    if mark in ("--", "/*") and at > 0 and text[at - 1] in _OPERATOR_CHARS:
        return None  # sqlparse would lex `+--`, `|/*` as an operator and miss the comment
    if mark == "--":
        return _past_line_comment(text, at)
    if mark == "/*":
        close = text.find("*/", at + 2)
        if close < 0 or text.startswith("/*+", at) or "/*" in text[at + 2 : close]:
            return None
        return close + 2
    if mark in ("'", '"'):
        if mark == "'" and _ENDS_WITH_WITH.search(code):
            return None  # sqlparse's `WITH'...` time-zone cast token
        quote_end = _closing_quote(text, at, mark)
        return None if quote_end is None else quote_end + 1
    if opener is not None and mark == "$":
        close = text.find(opener.group(), opener.end())
        return None if close < 0 else close + len(opener.group())
    if opener is not None:
        return opener.end()  # `[...]`: one name token for sqlparse, whatever it holds
    return None  # a backslash, backtick or acute accent outside quotes: sqlparse lexes these


def _past_line_comment(text: str, at: int) -> int | None:
    """Past the `--` comment at `at` and its newline; None for a hint comment (`--+`), which
    sqlparse does not count as a comment after a `;`."""
    if text.startswith("--+", at):
        return None
    newline = text.find("\n", at)
    return len(text) if newline < 0 else newline + 1


def _closing_quote(text: str, at: int, quote: str) -> int | None:
    """Where the string (or quoted identifier) opened at `at` ends; None where sqlparse's
    backslash rule (`\\'` does not close) could end it elsewhere, or it is unclosed."""
    pos = at + 1
    while True:
        close = text.find(quote, pos)
        if close < 0:
            return None
        if text[close - 1] == "\\":
            return None
        if text.startswith(quote, close + 1):
            pos = close + 2  # a doubled quote stands for one
            continue
        return close


def _after_trailing_comments(text: str, pos: int) -> int | None:
    """Past the blanks and `--` comments that follow a `;`: the start of the next statement."""
    length = len(text)
    while pos < length:
        char = text[pos]
        if char == "\n":
            return pos
        if char.isspace():
            pos += 1
        elif text.startswith("--", pos):
            after = _past_line_comment(text, pos)
            if after is None:
                return None
            pos = after
        elif text.startswith("# ", pos):
            return None
        else:
            return pos
    return pos
