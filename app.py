"""TuneBoard: fine-tune LLMs in the browser. ``python app.py --help`` lists the options."""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="TuneBoard web UI (LlamaBoard-style fine-tuning in the browser).")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default 127.0.0.1; env GRADIO_SERVER_NAME). Use 0.0.0.0 to serve others.")
    parser.add_argument("--port", type=int, default=int(env.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default 7860; env GRADIO_SERVER_PORT)")
    parser.add_argument("--root-path", default=env.get("GRADIO_ROOT_PATH", ""),
                        help="path prefix when served behind a reverse proxy, e.g. /user/alice/proxy/7860 "
                             "(env GRADIO_ROOT_PATH)")
    parser.add_argument("--share", action="store_true", default=env.get("GRADIO_SHARE", "") in ("1", "true"),
                        help="also create a public gradio.live link (needs internet; env GRADIO_SHARE=1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from webui.app import A11Y_JS, CSS, create_app  # noqa: PLC0415 - keeps --help instant

    demo = create_app()
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=args.host, server_port=args.port, root_path=args.root_path or None, share=args.share,
                css=CSS, js=A11Y_JS, footer_links=["api", "settings"], show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
