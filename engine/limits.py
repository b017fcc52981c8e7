"""Request limits checked before any expensive parsing.

A deeply nested CQL2 filter overflows the native stack of the `cql2` parser (the process dies, no
exception reaches Python), and deep JSON makes the decoders raise RecursionError. So nesting,
size and operator counts are measured first by linear scans without recursion: a tokenising
scan of cql2-text, an iterative walk of decoded JSON, a bracket count of raw JSON text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

from litestar import Request, Response
from litestar.routes import HTTPRoute

from .errors import InvalidParameter, PayloadTooLarge

__all__ = [
    "MAX_FILTER_BYTES",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_OPERATORS",
    "MAX_JSON_DEPTH",
    "MAX_PATH_INTEGER",
    "check_cql2_json",
    "check_cql2_text",
    "check_json_body",
    "check_request",
    "check_strings",
    "json_text_depth",
]

# A filter's geometry is bounded like `intersects` (see params.MAX_INTERSECTS_BYTES).
MAX_FILTER_BYTES = 200_000
# Parentheses in cql2-text, nested operators in cql2-json. The parser survived ~1500 levels on
# an 8 MiB thread stack; real filters stay under 10.
MAX_FILTER_DEPTH = 32
# Operators (AND, OR, NOT, comparisons, arithmetic, ...). A chain `a + a + ...` or `NOT NOT ...`
# nests one level per operator inside the parser (it died near 3000).
MAX_FILTER_OPERATORS = 256
# Arrays and objects in request bodies and JSON parameters. An operator is two levels (its
# object and `args`); the deepest filter with a MultiPolygon in a search body takes ~72.
MAX_JSON_DEPTH = 2 * MAX_FILTER_DEPTH + 16
# Integer path parameters are 32-bit row ids in PostgreSQL.
MAX_PATH_INTEGER = 2**31 - 1

_CQL2_TOKEN = re.compile(
    r"'(?:[^']|'')*'"  # string literal ('' escapes a quote)
    r'|"[^"]*"'  # quoted property name
    r"|[A-Za-z_][A-Za-z0-9_:.]*"  # keyword, function or property name
    r"|\d[\d.]*(?:[eE][-+]?\d+)?|\.\d+"  # number
    r"|<>|<=|>=|[-+*/^%=<>(),]"
)
_OPERATOR_WORDS = frozenset({"AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "DIV"})
_OPERATOR_SYMBOLS = frozenset({"<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "^", "%"})
# WKT literals: inside them '-' and '+' are signs of coordinates, not operators.
_GEOMETRY_WORDS = frozenset(
    {
        "POINT",
        "LINESTRING",
        "POLYGON",
        "MULTIPOINT",
        "MULTILINESTRING",
        "MULTIPOLYGON",
        "GEOMETRYCOLLECTION",
        "BBOX",
        "ENVELOPE",
    }
)
# After these a '-' or '+' directly before a digit is the sign of a number literal.
_SIGN_CONTEXT = frozenset({"", "(", ",", "=", "<", ">", "<=", ">=", "<>"}) | _OPERATOR_WORDS

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_STRING_BYTES = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
_NOT_BRACKET_BYTES = re.compile(rb"[^\[\]{}]")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# `\u0000` preceded by an even number of backslashes (an odd number escapes the backslash).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# A number too large for a float64 (1e999) or an integer beyond 64 bits.
_HUGE_NUMBER = re.compile(rb"\d[eE]\+?\d{3,}|\d{20,}")


def _too_deep(parameter: str, depth: int, maximum: int) -> InvalidParameter:
    return InvalidParameter(
        f"{parameter}: nested more than {maximum} levels deep (at least {depth}); "
        "simplify the expression"
    )


def check_cql2_text(text: str) -> None:
    """Refuse a cql2-text filter that is too large, too deeply nested or has too many operators."""
    size = len(text.encode())
    if size > MAX_FILTER_BYTES:
        raise PayloadTooLarge(f"filter: {size} bytes, more than the {MAX_FILTER_BYTES} allowed")
    depth = operators = 0
    geometry_depth: int | None = None  # the parenthesis depth a WKT literal opened at
    previous = ""
    for match in _CQL2_TOKEN.finditer(text):
        lexeme = match.group()
        upper = lexeme.upper()
        if lexeme == "(":
            depth += 1
            if depth > MAX_FILTER_DEPTH:
                raise _too_deep("filter", depth, MAX_FILTER_DEPTH)
            if geometry_depth is None and previous.upper() in _GEOMETRY_WORDS:
                geometry_depth = depth
        elif lexeme == ")":
            if depth == geometry_depth:
                geometry_depth = None
            depth -= 1
        elif upper in _OPERATOR_WORDS or (
            lexeme in _OPERATOR_SYMBOLS
            and not _is_sign(text, match.end(), previous, geometry_depth)
        ):
            operators += 1
            if operators > MAX_FILTER_OPERATORS:
                raise InvalidParameter(
                    f"filter: more than {MAX_FILTER_OPERATORS} operators; simplify the expression "
                    "(e.g. `IN (...)` instead of a chain of `OR`)"
                )
        previous = lexeme


def _is_sign(text: str, end: int, previous: str, geometry_depth: int | None) -> bool:
    following = text[end : end + 1]
    if text[end - 1] not in "+-" or not following or following not in "0123456789.":
        return False
    return geometry_depth is not None or previous.upper() in _SIGN_CONTEXT


def check_cql2_json(value: Any) -> None:
    """Refuse a decoded cql2-json filter that is too deep, has too many operators or is too large.

    Walked with an explicit stack: the value may be nested far deeper than Python's recursion
    limit allows a recursive walk (and than `json.dumps` can serialise).
    """
    operators = 0
    # (node, operators around it, arrays and objects around it)
    stack: list[tuple[Any, int, int]] = [(value, 0, 0)]
    while stack:
        node, depth, json_depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            if "op" in node:
                operators += 1
                depth += 1
                if operators > MAX_FILTER_OPERATORS:
                    raise InvalidParameter(
                        f"filter: more than {MAX_FILTER_OPERATORS} operators; simplify the "
                        "expression (e.g. `in` instead of a chain of `or`)"
                    )
                if depth > MAX_FILTER_DEPTH:
                    raise _too_deep("filter", depth, MAX_FILTER_DEPTH)
        elif isinstance(node, list):
            children = node
        else:
            continue
        if json_depth >= MAX_JSON_DEPTH:
            raise _too_deep("filter", json_depth + 1, MAX_JSON_DEPTH)
        stack.extend((child, depth, json_depth + 1) for child in children)
    size = len(json.dumps(value))
    if size > MAX_FILTER_BYTES:
        raise PayloadTooLarge(f"filter: {size} bytes, more than the {MAX_FILTER_BYTES} allowed")


def json_text_depth(text: str | bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (linear, without decoding)."""
    if isinstance(text, bytes):
        brackets = _NOT_BRACKET_BYTES.sub(b"", _JSON_STRING_BYTES.sub(b"", text))
    else:
        brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode()
    return max(accumulate(_BRACKET_STEP[b] for b in brackets), default=0)


def check_strings(values: Iterable[tuple[str, Any]]) -> None:
    """Refuse NUL characters in (name, value) parameters: PostgreSQL text cannot hold them."""
    for name, value in values:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidParameter(f"{name}: contains a NUL character (\\x00); remove it")


def check_json_body(body: bytes) -> None:
    """Refuse a JSON body nested too deeply, or holding a NUL character or a number no decoder
    keeps (1e999), naming the member, before the body is decoded for the handler."""
    depth = json_text_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise _too_deep("body", depth, MAX_JSON_DEPTH)
    has_nul = _ESCAPED_NUL.search(body) is not None
    if not has_nul and _HUGE_NUMBER.search(_JSON_STRING_BYTES.sub(b"", body)) is None:
        return
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return  # the handler's decoder reports malformed JSON
    for raw_path, value in _leaves(document):
        path = raw_path.replace("\x00", "\\u0000")  # a NUL in a key: shown escaped
        if isinstance(value, str) and "\x00" in value:
            raise InvalidParameter(f"{path}: contains a NUL character (\\u0000); remove it")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidParameter(f"{path}: number out of range; send a finite number")
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise InvalidParameter(f"{path}: {value} is out of range (64-bit integers at most)")


def _leaves(document: Any) -> Iterator[tuple[str, Any]]:
    """(path, value) of every key and scalar; paths like `filter.args[1]` (`body` at the top)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{key}" if path else str(key)
                yield child_path, key
                stack.append((child_path, child))
        elif isinstance(node, list):
            stack.extend((f"{path or 'body'}[{i}]", child) for i, child in enumerate(node))
        else:
            yield path or "body", node


async def check_request(request: Request[Any, Any, Any]) -> Response[None] | None:
    """The app's `before_request`: path and query parameters and JSON bodies, before the
    handler's parameters are decoded (msgspec raises RecursionError on deep bodies and sends
    NULs and 64-bit integers on to PostgreSQL, which refuses them with a 500)."""
    if request.method == "OPTIONS":
        return _options(request)
    for name, value in request.path_params.items():
        if isinstance(value, int) and not -MAX_PATH_INTEGER <= value <= MAX_PATH_INTEGER:
            raise InvalidParameter(
                f"{name}: {value} is out of range; ids are at most {MAX_PATH_INTEGER}"
            )
    check_strings(request.path_params.items())
    check_strings(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in ("POST", "PUT", "PATCH") and content_type.endswith("json"):
        check_json_body(await request.body())
    return None


def _options(request: Request[Any, Any, Any]) -> Response[None]:
    """Every method of the path in `Allow`: Litestar's own OPTIONS answer lists those of the
    route as first registered (GET alone for /search, PATCH alone for /sources/{id})."""
    paths = request.route_handler.paths
    methods = {
        method
        for route in request.app.routes
        if isinstance(route, HTTPRoute) and route.path in paths
        for method in route.methods
    }
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))})
