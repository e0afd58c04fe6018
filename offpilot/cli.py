"""The `offpilot` command line: model management, the server, one-shot completion, the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from completion import gate
from completion.models.specs import DEFAULT_MODEL, KNOWN_MODELS
from completion.models.store import ModelError


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # noqa: T201


def _cmd_model_install(args: argparse.Namespace) -> int:
    from completion.models import install as model_install

    if args.from_hf:
        result = model_install.install_from_hf(args.from_hf, args.name, args.cache_dir)
    else:
        result = model_install.install_known(
            args.name or DEFAULT_MODEL, args.cache_dir, full_vocabulary=args.full_vocabulary
        )
    model = result.model
    verb = "installed" if result.built else "already installed and verified"
    size_mb = model.size_bytes / 1e6
    _err(
        f"{model.manifest.name}: {verb} at {model.path} ({size_mb:.0f} MB, {result.seconds:.1f} s)"
    )
    from completion.engines.choose import local_engine

    # the file llama.cpp will run, chosen now (a re-encoding timed once) rather than at the
    # server's first load; CTranslate2 where llama.cpp is not installed
    engine, gguf = local_engine(model)
    _err(f"{model.manifest.name}: the engine is {engine}" + (f", running {gguf}" if gguf else ""))
    return 0


def _cmd_model_gguf(args: argparse.Namespace) -> int:
    from completion.models.install import ensure_gguf

    path, fetched = ensure_gguf(args.name or DEFAULT_MODEL, args.cache_dir)
    _err(f"{'fetched and verified' if fetched else 'verified'}: {path}")
    print(path)  # noqa: T201 - the path is the answer, for scripts
    return 0


def _cmd_model_list(args: argparse.Namespace) -> int:
    from completion.models.store import InstalledModel, cache_root, list_installed

    root = cache_root(args.cache_dir)
    found = list_installed(args.cache_dir)
    print(f"model cache: {root}")  # noqa: T201
    if not found:
        print(f"no models installed; run `offpilot model install` ({DEFAULT_MODEL})")  # noqa: T201
    for item in found:
        if isinstance(item, InstalledModel):
            m = item.manifest
            fim = "fim" if m.fim else "prefix-only"
            line = (
                f"  {m.name:24} {item.size_bytes / 1e6:7.0f} MB  {m.family:12} {fim:11} {item.path}"
            )
        else:
            line = f"  {item.name:24}  BROKEN (reinstall it)  {item}"
        print(line)  # noqa: T201
    known = ", ".join(KNOWN_MODELS)
    print(f"installable by name: {known}")  # noqa: T201
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.serve import run_server

    return run_server(args)


def _cmd_complete(args: argparse.Namespace) -> int:
    from offpilot.oneshot import complete_file

    return complete_file(args)


def _cmd_stats(_args: argparse.Namespace) -> int:
    from lsp_server.stats import Stats, format_summary

    print(format_summary(Stats().summary()))  # noqa: T201
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from offpilot.demo import run_demo

    return run_demo(args)


def _add_backend_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        metavar="URL",
        default=None,
        help="generate with an OpenAI-compatible server (llama.cpp, vLLM, Ollama) at URL; "
        "the model named by --model gives the tokenizer and prompt format (docs/latency.md)",
    )


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help=f"model name in the cache, or a directory as /ABS or ./DIR (default {DEFAULT_MODEL})",
    )
    p.add_argument("--cache-dir", default=None, help="model cache (default: $OFFPILOT_CACHE_DIR)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="offpilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="install and list local models")
    msub = model.add_subparsers(dest="model_command", required=True)
    inst = msub.add_parser("install", help="build a model into the cache (a no-op when present)")
    inst.add_argument(
        "name",
        nargs="?",
        default=None,
        help=f"one of {', '.join(KNOWN_MODELS)}; with --from-hf, the name to install it as",
    )
    inst.add_argument("--from-hf", metavar="PATH_OR_ID", help="convert a Hugging Face checkpoint")
    inst.add_argument(
        "--cache-dir", default=None, help="model cache (default: $OFFPILOT_CACHE_DIR)"
    )
    inst.add_argument(
        "--full-vocabulary",
        action="store_true",
        help="keep every output token (default: only tokens that occur in code; faster)",
    )
    inst.set_defaults(func=_cmd_model_install)
    gg = msub.add_parser(
        "gguf",
        help="the verified GGUF of a known model, for a llama.cpp backend (prints its path)",
    )
    gg.add_argument("name", nargs="?", default=None, help=f"one of {', '.join(KNOWN_MODELS)}")
    gg.add_argument("--cache-dir", default=None, help="model cache (default: $OFFPILOT_CACHE_DIR)")
    gg.set_defaults(func=_cmd_model_gguf)
    lst = msub.add_parser("list", help="show installed models")
    lst.add_argument("--cache-dir", default=None)
    lst.set_defaults(func=_cmd_model_list)

    serve = sub.add_parser(
        "serve",
        help="run the language server",
        epilog="--tcp serves one client on a loopback address. Its first message must be "
        "`initialize` with initializationOptions.token: $OFFPILOT_TCP_TOKEN if set, else a "
        "random token the server writes to a file only you can read (its path is printed "
        "on stderr). Any other connection is closed unanswered.",
    )
    serve.add_argument("--stdio", action="store_true", help="talk LSP over stdio (the default)")
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on TCP instead of stdio: a loopback HOST (127.0.0.1, ::1, localhost) "
        "and a token (below); PORT 0 picks a free port",
    )
    serve.add_argument("--log-file", default=None, help="log here instead of stderr")
    serve.add_argument("--log-level", default="INFO")
    _add_model_flags(serve)
    _add_backend_flag(serve)
    serve.set_defaults(func=_cmd_serve)

    comp = sub.add_parser("complete", help="print the completion at a position")
    comp.add_argument("file")
    comp.add_argument("line", type=int, help="0-based line")
    comp.add_argument("column", type=int, help="0-based UTF-16 column")
    comp.add_argument("--time-budget", type=float, default=30.0, help="seconds (default 30)")
    comp.add_argument(
        "--gate",
        default=gate.DEFAULT_POINT,
        choices=(gate.OFF, *gate.POINTS),
        help="show or not: off prints every answer; the points as the server's `gate` setting",
    )
    _add_model_flags(comp)
    _add_backend_flag(comp)
    comp.set_defaults(func=_cmd_complete)

    from offpilot.bench.replay import add_parser as add_bench_parser

    add_bench_parser(sub)

    stats = sub.add_parser("stats", help="show local acceptance statistics")
    stats.set_defaults(func=_cmd_stats)

    demo = sub.add_parser("demo", help="start the server and ask it for completions")
    _add_model_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    from eval.cli import add_parser as add_eval_parser

    add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `offpilot` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ModelError as exc:
        _err(f"offpilot: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("offpilot: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
