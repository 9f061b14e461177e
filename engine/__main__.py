"""Command line: the same code paths the web UI runs, for servers without a browser.

    python -m engine train  RUN.yaml     fine-tune (the run directory is RUN.yaml's folder)
    python -m engine eval   RUN.yaml     loss, perplexity, ROUGE and BLEU of a model / checkpoint
    python -m engine export RUN.yaml     merge a LoRA checkpoint into a standalone model folder
    python -m engine check  RUN.yaml     validate a config and print it back
    python -m engine chat --model M      chat in the terminal (reads stdin; /clear, /exit)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.core.chat_settings import GenerationSettings
from engine.core.config import COMMANDS, ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.download import ensure_model
from engine.core.hubs import HUB_CHOICES
from engine.core.model_files import ModelLoadError
from engine.core.rundir import FAILED, RunDir
from engine.core.templates import TemplateError

EPILOG = """\
examples:
  python -m engine train saves/SmolLM2-135M-Instruct/lora/run1/run.yaml
  python -m engine eval  saves/SmolLM2-135M-Instruct/lora/eval1/run.yaml
  python -m engine export saves/SmolLM2-135M-Instruct/lora/export1/run.yaml
  python -m engine chat --model demo/SmolLM2-135M-Instruct --adapter saves/SmolLM2-135M-Instruct/lora/run1
  echo "Who are you?" | python -m engine chat --model demo/SmolLM2-135M-Instruct

train/eval/export write status.json, events.jsonl and stdout.log into the run
directory (the folder of RUN.yaml unless its <section>.output_dir is set);
eval adds metrics.json and predictions.jsonl. Run `python -m engine COMMAND -h`
for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description="TuneBoard engine: the same code paths the web UI runs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_train = sub.add_parser("train", help="run a training run described by a run.yaml file")
    p_train.add_argument("config", help="path to run.yaml (its folder becomes the run directory unless "
                                        "train.output_dir is set)")
    p_eval = sub.add_parser(
        "eval", help="evaluate a model or checkpoint on datasets (loss, perplexity, ROUGE, BLEU)",
        description="Evaluate model.model_name_or_path (with model.adapter_path if set) on data.datasets: "
                    "eval loss and perplexity on the answers; with eval.predict also generated answers scored "
                    "with ROUGE-1/2/L and BLEU-4; with eval.compare_base the base model too. Writes "
                    "metrics.json and predictions.jsonl into the run directory.")
    p_eval.add_argument("config", help="path to run.yaml with model, data and eval sections (its folder becomes "
                                       "the run directory unless eval.output_dir is set)")
    p_export = sub.add_parser(
        "export", help="merge a LoRA checkpoint into the base model and save a standalone model folder",
        description="Merge model.adapter_path (a LoRA checkpoint) into model.model_name_or_path and write "
                    "safetensors shards, config, tokenizer, chat template and a README.md to export.export_dir "
                    "(which must be new or empty). A full/freeze checkpoint or no checkpoint is saved in the "
                    "same layout.")
    p_export.add_argument("config", help="path to run.yaml with model and export sections (its folder becomes "
                                         "the run directory unless export.output_dir is set)")
    p_check = sub.add_parser("check", help="validate a run.yaml file and print it back")
    p_check.add_argument("config")
    p_check.add_argument("--for", dest="for_command", choices=COMMANDS, default=None,
                         help="validate for this command and print only the sections it reads "
                              "(default: validate for train, print every section)")
    p_chat = sub.add_parser(
        "chat", help="chat with a model in the terminal (streams answers; /clear, /exit)",
        description="Chat in the terminal. Each line read from standard input is a message (it works with a "
                    "pipe too); the answer is streamed to standard output. /clear starts a new conversation, "
                    "/exit (or end of input) quits.")
    p_chat.add_argument("--model", default="demo/SmolLM2-135M-Instruct",
                        help="local model folder, hub id or demo/SmolLM2-135M-Instruct (default)")
    p_chat.add_argument("--adapter", default="", help="checkpoint folder: a LoRA adapter or a full/freeze model")
    p_chat.add_argument("--template", default="auto", help="chat template: auto (the tokenizer's), qwen, chatml, "
                                                           "llama3 or default")
    p_chat.add_argument("--system", default="", help="system prompt")
    p_chat.add_argument("--max-new-tokens", type=int, default=512, help="longest answer in tokens (default 512)")
    p_chat.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 is greedy "
                                                                       "(default 0.7)")
    p_chat.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling threshold (default 0.9)")
    p_chat.add_argument("--device", default="auto", help="auto, cpu, cuda, npu or mps")
    p_chat.add_argument("--hub", default="auto", choices=HUB_CHOICES,
                        help="where a model id is downloaded from (auto: USE_MODELSCOPE_HUB=1 / USE_OPENMIND_HUB=1, "
                             "else huggingface)")
    p_chat.add_argument("--trust-remote-code", action="store_true", help="allow model code shipped with the model")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "chat":
        return chat(args)
    command = (args.for_command or "train") if args.command == "check" else args.command
    try:
        cfg = RunConfig.load(args.config, command)
    except FileNotFoundError:
        print(f"error: config file {args.config!r} does not exist", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        if args.command != "check":
            _report_config_error(Path(args.config), exc)
        return 2
    if args.command == "check":
        print(cfg.to_yaml(args.for_command), end="")
        return 0
    if args.command == "eval":
        from engine.evaluate.run import run_evaluation  # noqa: PLC0415 - imports torch

        return run_evaluation(args.config)
    if args.command == "export":
        from engine.export import run_export  # noqa: PLC0415 - imports torch

        return run_export(args.config)
    from engine.train.run import run_training  # noqa: PLC0415 - imports torch

    return run_training(args.config)


def _report_config_error(config_path: Path, exc: ConfigError) -> None:
    """A run started by the app waits in status.json: say there why it never started."""
    run = RunDir(config_path.parent)
    if run.status_path.is_file():
        run.write_status(FAILED, error=f"invalid config: {exc}")


def _print_download(p) -> None:
    """One status line, rewritten in place, for a download in the terminal."""
    mb = 1e6
    eta = f"{p.eta_s:.0f} s left" if p.eta_s is not None else ""
    print(f"\rdownloading {p.model}: {p.file} ({p.files_done}/{p.files_total} files) "
          f"{p.done_bytes / mb:.1f} of {p.total_bytes / mb:.1f} MB, {p.rate_bps / mb:.1f} MB/s {eta}   ",
          end="\n" if p.files_total and p.files_done == p.files_total else "", file=sys.stderr, flush=True)


def chat(args) -> int:
    """A terminal chat over engine.serve.chat.ChatEngine: one line in, a streamed answer out."""
    if args.max_new_tokens < 1:
        print("error: --max-new-tokens must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.temperature <= 2 or not 0 < args.top_p <= 1:
        print("error: --temperature must be in 0..2 and --top-p in (0, 1]", file=sys.stderr)
        return 2
    from engine.serve.chat import ChatEngine  # noqa: PLC0415 - imports torch

    interactive = sys.stdin.isatty()
    engine = ChatEngine()
    print(f"loading {args.model}" + (f" with {args.adapter}" if args.adapter else "") + " ...", file=sys.stderr,
          flush=True)
    try:
        if not args.adapter:  # a hub id not on disk yet: downloaded first, its progress on one line
            ensure_model(args.model, args.hub, on_progress=_print_download)
        engine.load(args.model, args.adapter, args.template, args.device, args.trust_remote_code, hub=args.hub)
    except (ModelLoadError, TemplateError, DataError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_p=args.top_p)
    print("Type a message and press Enter; /clear starts over, /exit quits.", file=sys.stderr, flush=True)
    history: list[dict] = []
    while True:
        if interactive:
            print("\nUser: ", end="", flush=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:  # Ctrl-C at the prompt quits
            print(file=sys.stderr)
            break
        if not line:  # end of input
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/clear":
            history = []
            print("(conversation cleared)", file=sys.stderr, flush=True)
            continue
        if not interactive:
            print(f"User: {text}", flush=True)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + history
        messages.append({"role": "user", "content": text})
        print("Assistant: ", end="", flush=True)
        answer = ""
        try:
            for answer_so_far in engine.stream(messages, settings):
                sys.stdout.write(answer_so_far[len(answer):])
                sys.stdout.flush()
                answer = answer_so_far
        except KeyboardInterrupt:
            print("\n(answer stopped)", file=sys.stderr, flush=True)
        print(flush=True)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    engine.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
