"""Chat templates of reasoning models, written for the tests after the two kinds the field uses, and a copy of
the demo model that carries one, so the tokenizer, the chat engine and the app load it as a real reasoning model.

QWEN3_KIND takes ``enable_thinking``: the last answer carries its ``<think>`` block, past answers drop it, and with
thinking off the generation prompt holds an empty block. R1_KIND is of the DeepSeek-R1 kind: its generation prompt
opens ``<think>`` by itself and rendered answers never carry reasoning.
"""

from __future__ import annotations

import os
import shutil

QWEN3_KIND = (
    "{%- set ns = namespace(last_query=-1) -%}"
    "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last_query = loop.index0 -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{%- set content = m.content -%}{%- set reasoning = '' -%}"
    "{%- if '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{%- if loop.index0 > ns.last_query -%}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

R1_KIND = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}{{- m.content -}}"
    "{%- elif m.role == 'user' -%}{{- '<|im_start|>user\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>assistant\\n' + m.content.split('</think>')[-1].lstrip('\\n') + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}"
)

# The demo model copies text it is asked to repeat: started inside the think block by the R1-kind prompt, it
# writes REPEATED_REASONING, then, copying on, the close tag and an answer (greedy decoding).
REPEAT = "Repeat exactly:\nTwo plus two is four.\n</think>\n\nHello!"
REPEATED_REASONING = "Two plus two is four."


def model_with_template(folder, demo_model_dir, template: str) -> str:
    """A copy of the demo model (weights linked) whose tokenizer has ``template`` as its chat template."""
    folder.mkdir()
    for f in demo_model_dir.iterdir():
        if f.suffix == ".safetensors":
            os.symlink(f, folder / f.name)
        elif f.name != "chat_template.jinja":
            shutil.copy(f, folder / f.name)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return str(folder)
