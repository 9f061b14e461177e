"""A small interpreter of the part of Go's text/template that TuneBoard's Ollama Modelfiles use, so a test can
render a Modelfile's TEMPLATE on a conversation as Ollama would, and compare it with the chat template.

Supported: text; ``{{ .Content }}`` / ``{{ .Role }}``; ``{{ range .Messages }}...{{ end }}``;
``{{ if C }}...{{ else if C }}...{{ else }}...{{ end }}`` with C built from ``eq``, ``ne``, ``or``, ``and``,
``len``, ``index``, parentheses, ``.Field`` selectors and string / number literals. Anything else raises, so a
Modelfile using more than this is noticed rather than mis-rendered. No whitespace trimming (``{{-``): refused.
"""

from __future__ import annotations

import re

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(\d+)|([A-Za-z_][\w]*)|(\.[A-Za-z_][\w]*)|(\.))')


def _parse(template: str):
    """Nodes: ("text", s) | ("field", name) | ("range", expr, body) | ("if", [(cond, body)...], else_body)."""
    pieces, pos = [], 0
    for m in _ACTION.finditer(template):
        if m.start() > pos:
            pieces.append(("text", template[pos:m.start()]))
        inner = m.group(1)
        if inner.startswith("-") or inner.endswith("-"):
            raise ValueError("whitespace trimming is not supported")
        pieces.append(("action", inner.strip()))
        pos = m.end()
    if pos < len(template):
        pieces.append(("text", template[pos:]))

    def block(i: int, stops: tuple) -> tuple[list, int, str]:
        nodes = []
        while i < len(pieces):
            kind, value = pieces[i]
            if kind == "text":
                nodes.append(("text", value))
                i += 1
                continue
            word = value.split(" ", 1)[0]
            if word in stops or value.startswith("else"):
                return nodes, i, value
            if word == "range":
                body, i, end = block(i + 1, ("end",))
                nodes.append(("range", value[len("range"):].strip(), body))
                i += 1
            elif word == "if":
                branches, cond = [], value[2:].strip()
                else_body: list = []
                while True:
                    body, i, end = block(i + 1, ("end",))
                    branches.append((cond, body))
                    if end.startswith("else if"):
                        cond = end[len("else if"):].strip()
                        continue
                    if end == "else":
                        else_body, i, end = block(i + 1, ("end",))
                    break
                nodes.append(("if", branches, else_body))
                i += 1
            elif re.fullmatch(r"\.[A-Za-z_]\w*", value):
                nodes.append(("field", value[1:]))
                i += 1
            else:
                raise ValueError(f"unsupported action {{{{ {value} }}}}")
        return nodes, i, ""

    nodes, _, _ = block(0, ())
    return nodes


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


def _eval(expr: str, dot):
    """Evaluate a pipeline-free expression; ``and`` / ``or`` stop at their deciding argument, as in Go 1.18+."""
    tokens = _tokens(expr)

    def operand(i: int):  # -> (node, next index); nodes: ("lit", v) | ("dot",) | ("sel", node, name) | ("call", ...)
        tok = tokens[i]
        if tok == "(":
            node, i = call(i + 1)
            if tokens[i] != ")":
                raise ValueError("missing )")
            i += 1
        elif tok.startswith('"'):
            node, i = ("lit", tok[1:-1].encode().decode("unicode_escape")), i + 1
        elif tok.isdigit():
            node, i = ("lit", int(tok)), i + 1
        elif tok == ".":
            node, i = ("dot",), i + 1
        elif tok.startswith("."):
            node, i = ("sel", ("dot",), tok[1:]), i + 1
        else:
            raise ValueError(f"unexpected {tok!r}")
        while i < len(tokens) and tokens[i].startswith(".") and tokens[i] != ".":  # (index ...).Role
            node, i = ("sel", node, tokens[i][1:]), i + 1
        return node, i

    def call(i: int):
        fn = tokens[i]
        if fn not in _FUNCS:
            return operand(i)
        args, i = [], i + 1
        while i < len(tokens) and tokens[i] != ")":
            node, i = operand(i)
            args.append(node)
        return ("call", fn, args), i

    def value(node):
        if node[0] == "lit":
            return node[1]
        if node[0] == "dot":
            return dot
        if node[0] == "sel":
            return value(node[1])[node[2]]
        fn, args = node[1], node[2]
        if fn in ("or", "and"):
            result = None
            for arg in args:
                result = value(arg)
                if bool(result) == (fn == "or"):
                    break
            return result
        return _FUNCS[fn](*(value(a) for a in args))

    node, i = call(0)
    if i != len(tokens):
        raise ValueError(f"trailing tokens in {expr!r}")
    return value(node)


_FUNCS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "len": len, "index": lambda a, k: a[k],
          "or": None, "and": None}


def render(template: str, data: dict) -> str:
    def run(nodes, dot) -> str:
        out = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "field":
                out.append(str(dot[node[1]]))
            elif node[0] == "range":
                for item in _eval(node[1], dot) or []:
                    out.append(run(node[2], item))
            else:
                for cond, body in node[1]:
                    if _eval(cond, dot):
                        out.append(run(body, dot))
                        break
                else:
                    out.append(run(node[2], dot))
        return "".join(out)

    return run(_parse(template), data)
