"""An Ollama Modelfile for an exported GGUF: FROM the file, the chat template in Ollama's Go-template syntax,
its stop tokens and a few defaults.

The Go template is built from the same NamedTemplate pieces TuneBoard trains with, so `ollama run` shows the
model the prompt it was trained on. A model whose template is the tokenizer's own Jinja (no named template
matches it) gets no TEMPLATE line: Ollama then reads `tokenizer.chat_template` from the GGUF itself.
"""

from __future__ import annotations

from engine.core.templates import NamedTemplate, TemplateSyntax, template_program


class ModelfileError(ValueError):
    """A piece of the template cannot be written into a Modelfile."""


def _literal(text: str) -> str:
    # Go templates have no escape for "{{" in plain text; printing it as a string constant keeps it literal.
    if "{{" in text or "}}" in text:
        raise ModelfileError(f"template text {text!r} holds Go template delimiters")
    return text


# Ollama's Go templates: .Messages, each with .Role and .Content.
GO_SYNTAX = TemplateSyntax(
    literal=_literal, content="{{ .Content }}",
    no_system_first='{{ if or (eq (len .Messages) 0) (ne (index .Messages 0).Role "system") }}',
    each_message="{{ range .Messages }}", role_is='{{ if eq .Role "ROLE" }}',
    else_role_is='{{ else if eq .Role "ROLE" }}',
    end_if="{{ end }}", end_each="{{ end }}", generation_prompt=lambda text: text)  # Ollama always asks for a reply


def go_template(named: NamedTemplate, eos_token: str) -> str:
    """Ollama's TEMPLATE for ``named``: renders a conversation (.Messages) as NamedTemplate.render does,
    generation prompt included. No whitespace trimming ({{-): the templates' newlines are part of the prompt."""
    return template_program(named, eos_token, GO_SYNTAX)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_modelfile(gguf_name: str, named: NamedTemplate | None, stop_tokens: list[str], eos_token: str = "",
                    context_length: int = 4096, temperature: float | None = None, top_p: float | None = None) -> str:
    lines = ["# Ollama Modelfile written by TuneBoard: ollama create <name> -f Modelfile", f"FROM ./{gguf_name}", ""]
    if named is not None:
        template = go_template(named, eos_token)
        if '"""' in template:
            raise ModelfileError('the template holds """, which a Modelfile cannot quote')
        lines += [f'TEMPLATE """{template}"""', ""]
    else:
        lines += ["# No TEMPLATE: Ollama uses the chat template stored in the GGUF (tokenizer.chat_template).", ""]
    for stop in dict.fromkeys(s for s in stop_tokens if s):
        lines.append(f"PARAMETER stop {_quoted(stop)}")
    lines.append(f"PARAMETER num_ctx {min(int(context_length), 4096)}")
    if temperature is not None:
        lines.append(f"PARAMETER temperature {temperature:g}")
    if top_p is not None:
        lines.append(f"PARAMETER top_p {top_p:g}")
    return "\n".join(lines) + "\n"
