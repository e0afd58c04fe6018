"""The `offpilot eval` commands (run, compare, repost, make-tasks, humaneval-x).

Heavy imports happen in the commands.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from completion.engines.choose import DEFAULT_ENGINE, ENGINES

if TYPE_CHECKING:
    from eval.records import RunSettings


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the `eval` command group on the top-level `offpilot` subparsers."""
    from eval.data import SUITES

    ev = subparsers.add_parser("eval", help="benchmark completion quality and latency")
    esub = ev.add_subparsers(dest="eval_command", required=True)

    run = esub.add_parser(
        "run",
        help="fill holes with the model through the editor pipeline, run the tests, score",
    )
    run.add_argument(
        "--suite", required=True, help=f"one of {', '.join(SUITES)}, or a JSONL task file"
    )
    _add_run_options(run)
    run.add_argument("--out", default=None, help="output directory (default eval-runs/SUITE)")
    run.add_argument("--model", default=None, help="model name or directory")
    run.add_argument("--cache-dir", default=None, help="model cache (default: $OFFPILOT_CACHE_DIR)")
    run.add_argument(
        "--backend",
        metavar="URL",
        default=None,
        help="generate with an OpenAI-compatible server at URL (the model gives the tokenizer)",
    )
    run.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="what runs the local model (auto: llama.cpp where its GGUF is installed)",
    )
    run.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: join ADDRESS, or start a local one (needs offpilot[scale])",
    )
    run.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        metavar="N",
        help="Ray actors, each with the model loaded (default: the cluster's CPUs / 2)",
    )
    run.set_defaults(func=_cmd_run)

    cmp = esub.add_parser(
        "compare",
        help="models side by side on the same tasks: pass@1 with paired tests, latency, plots",
    )
    cmp.add_argument(
        "runs",
        nargs="*",
        metavar="RUN_DIR",
        help="finished runs (or directories of runs, one per suite); the first is the baseline",
    )
    cmp.add_argument("--out", required=True, help="report directory (and the runs of --model)")
    cmp.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME_OR_DIR",
        help="run this model (repeatable) into OUT/<name>/ first, then compare",
    )
    cmp.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="URL",
        help="run an OpenAI-compatible server (repeatable) into OUT/<host-port>/ too; "
        "the default model (or --backend-model) gives its tokenizer and prompt format",
    )
    cmp.add_argument(
        "--backend-model", default=None, help="the model whose family a --backend serves"
    )
    cmp.add_argument(
        "--suite",
        action="append",
        default=[],
        help=f"suite for --model runs (repeatable): {', '.join(SUITES)}, or a JSONL task file",
    )
    _add_run_options(cmp)
    cmp.add_argument("--cache-dir", default=None, help="model cache (default: $OFFPILOT_CACHE_DIR)")
    cmp.add_argument(
        "--intersect",
        action="store_true",
        help="pair on the tasks all runs share (with a note) instead of refusing other task sets",
    )
    cmp.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    cmp.set_defaults(func=_cmd_compare)

    rp = esub.add_parser(
        "repost",
        help="post-process a finished run's raw model output with stages switched; test again",
    )
    rp.add_argument("source", help="directory of a finished `eval run`")
    rp.add_argument(
        "--set",
        dest="spec",
        required=True,
        help="post-processing switches, e.g. dedupe=0,balance=0 (dedupe, balance, repetition, "
        "reindent, syntax, keep_parse, indent_fit); first_line=1 cuts every completion to its "
        "first line (with every stage off: the bare-model baseline)",
    )
    rp.add_argument("--out", required=True, help="output directory of the new run")
    rp.add_argument("--workers", type=int, default=None, help="parallel test runs (cores)")
    rp.set_defaults(func=_cmd_repost)

    mk = esub.add_parser(
        "make-tasks", help="blank code that a project's own tests exercise; write tasks JSONL"
    )
    mk.add_argument("project", help="project directory (with its tests)")
    mk.add_argument("--out", required=True, help="tasks JSONL to write")
    mk.add_argument("--limit", type=int, default=None, help="at most N tasks (seeded sample)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--workers", type=int, default=2, help="parallel verification runs")
    mk.add_argument("--tests", default=None, help="test directory (default: found)")
    mk.add_argument("--timeout", type=float, default=300.0, help="seconds for the traced test run")
    mk.add_argument(
        "--no-verify", action="store_true", help="skip checking that each reference passes"
    )
    mk.add_argument(
        "--kinds",
        default="line,block,body",
        help="hole kinds, a comma list of line, block, body (default: all)",
    )
    mk.add_argument(
        "--cross-file",
        action="store_true",
        help="only holes that use a name imported from another module of the project",
    )
    mk.set_defaults(func=_cmd_make_tasks)

    st = esub.add_parser("suites", help="the real-project suites (repo-lines, ...)")
    stsub = st.add_subparsers(dest="suites_command", required=True)
    sb = stsub.add_parser(
        "build", help="fetch the pinned packages from PyPI (cached) and write the suites' tasks"
    )
    sr = stsub.add_parser(
        "remake", help="maintainers: choose and verify the holes again with make-tasks"
    )
    for sp in (sb, sr):
        sp.add_argument(
            "--dir",
            default=None,
            help="suites directory (default: $OFFPILOT_SUITES_DIR, ~/.cache/offpilot/eval-suites)",
        )
        sp.add_argument(
            "--offline", action="store_true", help="use only sdists already in DIR/sdists"
        )
    sb.add_argument(
        "--index", default=None, help="a simple package index (default https://pypi.org/simple)"
    )
    sr.add_argument("--workers", type=int, default=2, help="parallel verification runs")
    st.set_defaults(func=_cmd_suites)

    gt = esub.add_parser("gate", help="the show-or-not gate (completion/gate.py)")
    gtsub = gt.add_subparsers(dest="gate_command", required=True)
    gf = gtsub.add_parser(
        "fit",
        help="cross-validate the gate on finished runs, print its tables, fit it on all of them",
    )
    gf.add_argument("runs", nargs="+", help="run directories (eval run --out)")
    gf.add_argument(
        "--out",
        default=None,
        help="write the parameters here (the shipped files: completion/data/gate.json for "
        "llama.cpp's log-probs, gate-ctranslate2.json for CTranslate2's); without it, only "
        "the tables",
    )
    gf.add_argument("--folds", type=int, default=5, help="cross-validation folds (by group)")
    gt.set_defaults(func=_cmd_gate)

    hx = esub.add_parser(
        "humaneval-x",
        help="build the HumanEval-X infilling suites: holes whose reference passes, blank fails",
    )
    hx.add_argument("source", help="HumanEval-X directory (humaneval_LANG.jsonl.gz files)")
    hx.add_argument("--out-dir", default=None, help="where the suites go (default: eval/data)")
    hx.add_argument("--languages", default="js,go,java,cpp,rust", help="a comma list")
    hx.add_argument("--single", type=int, default=120, help="single-line holes per language")
    hx.add_argument("--multi", type=int, default=80, help="multi-line holes per language")
    hx.add_argument("--seed", type=int, default=0)
    hx.add_argument("--workers", type=int, default=2, help="parallel verification runs")
    hx.set_defaults(func=_cmd_humaneval_x)
    return ev


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a benchmark run that `eval run` and `eval compare --model` share."""
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N tasks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of sampling")
    parser.add_argument("--samples", type=int, default=1, help="samples per task (pass@k, k<=N)")
    parser.add_argument(
        "--temperature", type=float, default=None, help="0 is greedy (default: 0, or 0.8 if N>1)"
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel test runs (cores)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per test run")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="generation time budget per request in seconds (default: the editor's)",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="token cap (default: the editor's)"
    )
    parser.add_argument(
        "--projects",
        default=None,
        metavar="DIR",
        help="project tasks may name directories under DIR (default: the tasks file's "
        "directory); any other `project` is refused",
    )
    parser.add_argument(
        "--set",
        default=None,
        metavar="NAME=VALUE,...",
        help="pipeline options for an ablation (CompletionOptions fields, e.g. dedupe=0); "
        "an unknown name is an error (OFFPILOT_PIPELINE is read when --set is not given)",
    )


def _run_settings(
    args: argparse.Namespace,
    suite: str,
    model: str,
    backend: str | None = None,
    model_sha256: str = "",
    engine: str = "",
) -> RunSettings:
    """A run's settings from the shared run options (`--set` is checked by the caller).

    `--projects` is kept absolute, so a resume from another directory allows the same one.
    """
    from eval.records import RunSettings

    temperature = args.temperature
    if temperature is None:
        temperature = 0.8 if args.samples > 1 else 0.0
    defaults = RunSettings(suite=suite)
    return RunSettings(
        suite=suite,
        limit=args.limit,
        seed=args.seed,
        samples=args.samples,
        temperature=temperature,
        timeout_s=args.timeout,
        max_new_tokens=args.max_new_tokens or defaults.max_new_tokens,
        time_budget_s=args.time_budget or defaults.time_budget_s,
        model=model,
        pipeline=_pipeline_spec(args),
        backend=backend or "",
        engine=engine,
        projects=str(Path(args.projects).resolve()) if args.projects else "",
        model_sha256=model_sha256,
    )


def _pipeline_spec(args: argparse.Namespace) -> str:
    """`--set`, else $OFFPILOT_PIPELINE; raises ValueError naming a bad option."""
    from completion.options import CompletionOptions

    spec = args.set if args.set is not None else os.environ.get("OFFPILOT_PIPELINE", "")
    CompletionOptions().with_spec(spec)
    return spec.strip()


def _cmd_run(args: argparse.Namespace) -> int:
    from completion.engines.choose import local_engine, open_engine
    from completion.models.store import locate
    from eval.data import TaskPathError, suite_name
    from eval.ray_run import RayRunError, RayUnavailableError
    from eval.records import SettingsMismatchError, model_sha256
    from eval.run import run
    from eval.sandbox.execution import SandboxUnavailable

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        _pipeline_spec(args)
    except ValueError as exc:
        print(f"offpilot eval: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    model = locate(args.model, args.cache_dir)
    engine = "" if args.backend else local_engine(model, args.engine)[0]
    settings = _run_settings(
        args, args.suite, model.manifest.name, args.backend, model_sha256(model.manifest), engine
    )
    out = Path(args.out or f"eval-runs/{suite_name(args.suite)}")
    try:
        if args.ray is not None:
            summary = _run_on_ray(settings, out, args)
        else:
            factory = functools.partial(
                open_engine, model, engine=engine or DEFAULT_ENGINE, backend=args.backend
            )
            summary = run(settings, out, factory, workers=args.workers)
    except (
        SettingsMismatchError,
        FileNotFoundError,
        TaskPathError,
        SandboxUnavailable,
        RayUnavailableError,
        RayRunError,
    ) as exc:
        print(f"offpilot eval: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    lat = summary["latency_ms"]
    brief = {k: v for k, v in summary.items() if k.startswith("pass@")}
    print(  # noqa: T201
        json.dumps(
            {
                "suite": summary["suite"],
                "tasks": summary["tasks"],
                **brief,
                "latency_ms": {q: round(lat.get(q, 0.0), 1) for q in ("p50", "p90", "p99")},
                "wall_s": summary["wall_s"],
                "out": str(out),
            }
        )
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from completion.models.store import ModelError
    from eval.compare import (
        CompareError,
        CompareOptions,
        Entrant,
        compare,
        log_note,
        run_entrants,
        unique_labels,
        verdicts,
    )
    from eval.records import SettingsMismatchError
    from eval.sandbox.execution import SandboxUnavailable

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = Path(args.out)
    paths = [Path(p) for p in args.runs]
    try:
        if args.model or args.backend:
            if not args.suite:
                raise CompareError("--model and --backend need --suite (the same tasks for all)")
            taken = [p.resolve().name for p in paths]
            # (label, model, backend): a backend is labelled by its host and port
            wanted = [(Path(m).name, m, "") for m in args.model] + [
                (urlsplit(u).netloc.replace(":", "-") or "backend", args.backend_model or "", u)
                for u in args.backend
            ]
            labels = unique_labels(taken + [name for name, _, _ in wanted])[len(taken) :]
            entrants = [
                Entrant(label, model=m, backend=b)
                for label, (_, m, b) in zip(labels, wanted, strict=True)
            ]
            template = _run_settings(args, args.suite[0], "")
            paths += run_entrants(
                entrants, template, args.suite, out, args.cache_dir, workers=args.workers
            )
        elif args.suite:
            raise CompareError("--suite is for --model/--backend runs; finished runs carry theirs")
        options = CompareOptions(intersect=args.intersect, seed=args.seed, resamples=args.resamples)
        result = compare(paths, out, options)
    except (
        CompareError,
        ModelError,
        SettingsMismatchError,
        SandboxUnavailable,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"offpilot eval compare: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    log_note(result)
    for line in verdicts(result):
        print(line)  # noqa: T201
    print(f"report: {out / 'compare.md'}")  # noqa: T201
    return 0


def _run_on_ray(settings: Any, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`eval run --ray`: each worker loads the model named on the command line from its cache."""
    from eval.ray_run import RayOptions, RayRunError, model_factory, run_on_ray

    if args.ray_workers is not None and args.ray_workers < 1:
        raise RayRunError("--ray-workers must be at least 1")
    options = RayOptions(address=args.ray or None, workers=args.ray_workers)
    return run_on_ray(
        settings,
        out,
        model_factory(args.model, args.cache_dir, args.backend, settings.engine or DEFAULT_ENGINE),
        options,
    )


def _cmd_repost(args: argparse.Namespace) -> int:
    from completion.cpu_load import usable_cores
    from eval.data import TaskPathError
    from eval.records import SettingsMismatchError
    from eval.repost import RepostError, repost

    try:
        workers = args.workers or usable_cores()
        summary = repost(Path(args.source), Path(args.out), args.spec, workers=workers)
    except (RepostError, SettingsMismatchError, FileNotFoundError, TaskPathError) as exc:
        print(f"offpilot eval repost: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    brief = {k: v for k, v in summary.items() if k.startswith("pass@")}
    print(  # noqa: T201
        json.dumps(
            {
                "suite": summary["suite"],
                "tasks": summary["tasks"],
                **brief,
                "changed": summary["changed"],
                "pipeline": summary["settings"]["pipeline"],
                "out": args.out,
            }
        )
    )
    return 0


def _cmd_make_tasks(args: argparse.Namespace) -> int:
    from eval.suites.make_tasks import make_tasks

    tasks = make_tasks(
        Path(args.project),
        Path(args.out),
        limit=args.limit,
        seed=args.seed,
        tests_dir=Path(args.tests) if args.tests else None,
        verify_tasks=not args.no_verify,
        timeout_s=args.timeout,
        workers=args.workers,
        log=lambda m: print(m, file=sys.stderr),  # noqa: T201
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        cross_file=args.cross_file,
    )
    print(f"{len(tasks)} tasks written to {args.out}", file=sys.stderr)  # noqa: T201
    return 0 if tasks else 1


def _cmd_suites(args: argparse.Namespace) -> int:
    from eval import data
    from eval.suites import packages, repo

    root = Path(args.dir) if args.dir else data.repo_suites_dir()
    try:
        if args.suites_command == "build":
            counts = repo.build(root, args.offline, args.index or packages.PYPI_SIMPLE)
        else:
            counts = repo.remake(
                root,
                offline=args.offline,
                workers=args.workers,
                log=lambda m: print(m, file=sys.stderr),  # noqa: T201
            )
    except (packages.FetchError, repo.SuiteError, FileNotFoundError) as exc:
        print(f"offpilot eval suites {args.suites_command}: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    for name, n in counts.items():
        print(f"{name}: {n} tasks in {root / (name + '.jsonl')}", file=sys.stderr)  # noqa: T201
    print(json.dumps(counts))  # noqa: T201
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    try:
        from eval import gate_fit
    except ImportError as exc:  # numpy / scikit-learn: the `train` extra
        print(f"offpilot eval gate: {exc}; pip install -e '.[train]'", file=sys.stderr)  # noqa: T201
        return 2
    runs = [Path(r) for r in args.runs]
    missing = [str(r) for r in runs if not (r / "samples.jsonl").is_file()]
    if missing:
        print(f"offpilot eval gate fit: no samples.jsonl in {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        lines, model = gate_fit.fit_and_report(
            runs, Path(args.out) if args.out else None, args.folds
        )
    except (ImportError, ValueError) as exc:
        print(f"offpilot eval gate fit: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    print("\n".join(lines))  # noqa: T201
    print(f"\nthresholds: {json.dumps(model.thresholds)}", file=sys.stderr)  # noqa: T201
    return 0


def _cmd_humaneval_x(args: argparse.Namespace) -> int:
    from eval.data import DATA_DIR
    from eval.suites.humaneval_x import BuildOptions, make_suites

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    options = BuildOptions(args.single, args.multi, seed=args.seed, workers=args.workers)
    try:
        counts = make_suites(
            Path(args.source),
            Path(args.out_dir) if args.out_dir else DATA_DIR,
            tuple(x.strip() for x in args.languages.split(",") if x.strip()),
            options,
            log=lambda m: print(m, file=sys.stderr),  # noqa: T201
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"offpilot eval humaneval-x: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    print(json.dumps(counts))  # noqa: T201
    return 0
