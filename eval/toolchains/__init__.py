"""Compile and test a filled-in program of another language than Python, in the sandbox.

Each language is a `Toolchain`: the binaries it needs (and the Debian package that has
them), the file the program goes in, the compile and run commands and their time limits,
the environment, and the sandbox allowances it needs (the JVM and go reserve address space
and start many threads). A small Python driver (`eval.toolchains.driver`) runs in the sandbox via
`execution.run_program`: it checks the binaries *as the sandbox sees them* (a rustup in
/root is hidden there), compiles, runs, caps each step's output and time, and ends with one
exception line that `outcome` maps to a result: `toolchain missing: ...` (an error, never
the model's failure: the summary leaves such samples out), `compile error: ...`, `test
failed: ...`, `test unfinished: ...` or a timeout.

A test passes only if it ran to its end: each language has a runner (a file of its own, or
code appended after the test) that reads the driver's nonce from stdin and closes it before
the completion's code runs, and prints `END_MARK nonce` after the test's last assertion.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from eval import data
from eval.sandbox import execution
from eval.toolchains import driver

log = logging.getLogger(__name__)

MISSING = "toolchain missing: "  # the reason's prefix for a toolchain the sandbox lacks
COMPILE_ERROR = "compile error: "
TEST_FAILED = "test failed: "
CONFIG = "toolchain.json"
GOPATH = "/usr/share/gocode"  # Debian's golang-*-dev packages (testify) live here
_JS_ASSERT = (
    "console.assert = (ok, ...m) => { if (!ok) throw new Error("
    "'Assertion failed' + (m.length ? ': ' + m.join(' ') : '')); };\n"
)
_GO_TEST_IMPORTS = 'import (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
# Standard packages the HumanEval-X Go problems import: built once into the shared cache.
_GO_WARM = ("bytes", "crypto/md5", "fmt", "math", "regexp", "sort", "strconv", "strings", "time")
_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:CICompilerCount=2")
_JVM_SMALL = ("-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m")
END = driver.END_MARK
# The driver's text (it runs in the sandbox as the sample's program, never here)
_DRIVER = resources.files("eval.toolchains").joinpath("driver.py").read_text(encoding="utf-8")

# The runners: each reads the nonce (stdin) before any of the completion's code runs, keeps
# it where that code cannot name it, and prints it only once the test returned normally.
_JS_RUNNER = f"""\
'use strict';
const fs = require('fs');
const offpilotNonce = (() => {{
  const parts = [], buf = Buffer.alloc(256);
  for (let n; (n = fs.readSync(0, buf, 0, buf.length, null)) > 0; ) parts.push(buf.subarray(0, n));
  fs.closeSync(0);
  return Buffer.concat(parts).toString();
}})();
require('./main.js');
fs.writeSync(1, '\\n{END} ' + offpilotNonce + '\\n');
"""
_JAVA_RUNNER = f"""\
public class OffpilotRun {{
    public static void main(String[] args) throws Throwable {{
        String nonce = new String(System.in.readAllBytes());
        System.in.close();
        Main.main(args);
        System.out.print("\\n{END} " + nonce + "\\n");
        System.out.flush();
    }}
}}
"""
_GO_RUNNER = f"""\
package {{package}}

import (
    "io"
    "os"
    "testing"
)

func TestMain(m *testing.M) {{
    nonce, _ := io.ReadAll(os.Stdin)
    os.Stdin.Close()
    code := m.Run()
    if code == 0 {{
        os.Stdout.WriteString("\\n{END} " + string(nonce) + "\\n")
    }}
    os.Exit(code)
}}
"""
# C++: the test's main becomes offpilot_test_main (`auto`: it may or may not return a value);
# the nonce is read by a constructor that runs before the ordinary static initializers.
_CPP_MAIN = re.compile(r"\bint\s+main\s*\(")
_CPP_RUNNER = f"""
#include <unistd.h>
#include <cstdio>
#include <type_traits>
static char offpilot_nonce[128];
__attribute__((constructor(101))) static void offpilot_read_nonce() {{
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof offpilot_nonce - 1
           && (n = read(0, offpilot_nonce + got, sizeof offpilot_nonce - 1 - got)) > 0)
        got += n;
    close(0);
}}
template <class F> int offpilot_call(F test) {{
    if constexpr (std::is_void_v<decltype(test())>) {{
        test();
        return 0;
    }} else {{
        return test();
    }}
}}
int main() {{
    int status = offpilot_call(offpilot_test_main);
    if (status == 0) {{
        std::fflush(stdout);
        std::printf("\\n{END} %s\\n", offpilot_nonce);
        std::fflush(stdout);
    }}
    return status;
}}
"""
# Rust: libtest runs tests in name order, so this module's test runs last; the nonce is read
# before main (.init_array) into a static private to the module.
_RUST_RUNNER = f"""
#[cfg(test)]
mod zzzz_offpilot_end {{
    use std::io::{{Read, Write}};
    use std::os::unix::io::FromRawFd;

    static NONCE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

    extern "C" fn offpilot_read_nonce() {{
        let mut stdin = unsafe {{ std::fs::File::from_raw_fd(0) }};
        let mut nonce = String::new();
        let _ = stdin.read_to_string(&mut nonce);
        if let Ok(mut kept) = NONCE.lock() {{
            *kept = nonce;
        }}
    }}

    #[used]
    #[link_section = ".init_array"]
    static OFFPILOT_READ_NONCE: extern "C" fn() = offpilot_read_nonce;

    #[test]
    fn zzzz_end() {{
        let nonce = NONCE.lock().map(|n| n.clone()).unwrap_or_default();
        let mut out = std::io::stdout();
        let _ = write!(out, "\\n{END} {{}}\\n", nonce);
        let _ = out.flush();
    }}
}}
"""


# What upstream's harness (CodeGeeX, evaluate_humaneval_x.py) does to a program before it
# compiles it: Go gets the imports of the helper packages its code uses (and loses the
# prompt's own import block, so an unused import is no error); C++ gets the usual headers.
GO_PACKAGES = (
    "math", "strings", "fmt", "strconv", "time", "bytes", "regexp", "sort", "math/rand",
    "crypto/md5",
)  # fmt: skip
CPP_HEADERS = (
    "stdlib.h", "algorithm", "cmath", "math.h", "numeric", "stdio.h", "vector", "set", "map",
    "queue", "stack", "list", "deque", "string", "climits", "cstring", "iostream", "sstream",
    "fstream",
)  # fmt: skip
_GO_IMPORTS = re.compile(r'^import\s*(\([^)]*\)|"[^"\n]*")[ \t]*\n?', re.M)


def go_imports(text: str) -> str:
    """A Go file with its import declarations replaced by the helper packages it uses."""
    head, sep, rest = text.partition("\n")
    body = _GO_IMPORTS.sub("", rest)
    used = [p for p in GO_PACKAGES if re.search(rf"\b{p.rsplit('/', 1)[-1]}\.", body)]
    block = "import (\n" + "".join(f'    "{p}"\n' for p in used) + ")\n" if used else ""
    return head + sep + _GO_TEST_IMPORTS + block + body


def cpp_headers(text: str) -> str:
    """A C++ file with the usual headers it lacks included first."""
    missing = [h for h in CPP_HEADERS if not re.search(rf"#include\s*<{re.escape(h)}>", text)]
    return "".join(f"#include<{h}>\n" for h in missing) + "using namespace std;\n" + text


@dataclass(frozen=True)
class Toolchain:
    """How one language's program is compiled and run in the sandbox."""

    language: str
    needs: tuple[tuple[str, str], ...]  # (binary or path, what to install)
    source: str  # the file the program is written to
    document: str  # the file name the editor request gives (the language's usual main file)
    compile: tuple[str, ...]  # empty: nothing to compile
    run: tuple[str, ...]
    compile_s: float = 30.0
    run_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict)  # "{work}" is the sample's directory
    prelude: str = ""  # prepended to the program
    fail_marker: str = ""  # output that fails the run even when it exits 0
    runner: tuple[str, str] = ("", "")  # (file, text) of a runner of its own, if any
    summary: str = ""  # output the run must print after the end line
    memory_bytes: int = 2 << 30  # address space per process (rlimit) and cgroup cap
    processes: int = 64
    file_bytes: int = 64 << 20
    tmp_bytes: int = 256 << 20

    def limits(self, run_s: float | None = None) -> execution.Limits:
        """The sandbox limits of one sample: both steps and a margin for the driver."""
        run = self.run_s if run_s is None else run_s
        return execution.Limits(
            timeout_s=self.compile_s + run + 10.0,
            cpu_s=int(max(self.compile_s, run)) + 5,
            memory_bytes=self.memory_bytes,
            file_bytes=self.file_bytes,
            processes=self.processes,
            tmp_bytes=self.tmp_bytes,
        )


TOOLCHAINS: dict[str, Toolchain] = {
    tc.language: tc
    for tc in (
        Toolchain(
            "javascript",
            (("node", "nodejs"),),
            "main.js",
            "main.js",
            ("node", "--check", "main.js"),  # a syntax error is a compile error
            ("node", "--max-old-space-size=512", "offpilot_run.js"),
            prelude=_JS_ASSERT,
            fail_marker="Assertion failed",
            runner=("offpilot_run.js", _JS_RUNNER),
        ),
        Toolchain(
            "go",
            (
                ("go", "golang-go"),
                (
                    f"{GOPATH}/src/github.com/stretchr/testify/assert",
                    "golang-github-stretchr-testify-dev",
                ),
            ),
            "main_test.go",
            "main.go",
            (
                "go",
                *("test", "-c", "-vet=off", "-o", "main.test"),
                *("main_test.go", "offpilot_run_test.go"),
            ),
            ("./main.test", "-test.count=1"),
            compile_s=60.0,
            env={
                "GO111MODULE": "off",
                "GOPATH": GOPATH,
                "GOCACHE": "{work}/gocache",
                "GOTMPDIR": "{work}/gotmp",
                "GOFLAGS": "-p=2",
                "GOMAXPROCS": "2",
                "CGO_ENABLED": "0",
                "GOTOOLCHAIN": "local",
                "GOPROXY": "off",
            },
            processes=128,  # go test runs compile and link, each with threads
            runner=("offpilot_run_test.go", _GO_RUNNER),  # its own file: the sample's lacks os
        ),
        Toolchain(
            "java",
            (("javac", "default-jdk-headless"), ("java", "default-jdk-headless")),
            "Main.java",
            "Main.java",
            (
                "javac",
                *(f"-J{f}" for f in (*_JVM, *_JVM_SMALL, "-Xmx512m")),
                "-nowarn",
                "-encoding",
                "UTF-8",
                "Main.java",
                "OffpilotRun.java",
            ),
            ("java", *_JVM, *_JVM_SMALL, "-Xmx512m", "-Xss16m", "-cp", ".", "OffpilotRun"),
            compile_s=60.0,
            memory_bytes=4 << 30,  # the JVM reserves heap, class space, code cache, stacks
            processes=128,  # JVM threads (GC, compiler, ...) count against RLIMIT_NPROC
            runner=("OffpilotRun.java", _JAVA_RUNNER),
        ),
        Toolchain(
            "cpp",
            (("g++", "g++"),),
            "main.cpp",
            "main.cpp",
            ("g++", "-std=c++17", "-O0", "-o", "main", "main.cpp", "-lm"),
            ("./main",),
        ),
        Toolchain(
            "rust",
            (("rustc", "rustc"),),
            "main.rs",
            "main.rs",
            ("rustc", "--test", "--edition", "2021", "-A", "warnings", "-o", "main", "main.rs"),
            ("./main", "--test-threads=1", "-q"),
            compile_s=60.0,
            summary="test result: ok.",
        ),
    )
}


OUTPUT_CAP = 16 << 10  # bytes of each step's output kept (execution caps the whole at 64 KiB)


def toolchain(language: str) -> Toolchain:
    """The toolchain of a language id; KeyError names the ones there are."""
    try:
        return TOOLCHAINS[language]
    except KeyError:
        raise KeyError(f"no toolchain for {language!r}: {', '.join(TOOLCHAINS)}") from None


def program_source(tc: Toolchain, task: data.Task, completion: str) -> str:
    """The file that is compiled: the filled-in code, the test, and the language's prelude."""
    text = data.filled(task, completion) + "\n" + task.test
    if tc.language == "go" and text.startswith("package "):
        return go_imports(text)
    if tc.language == "cpp":
        test = _CPP_MAIN.sub("auto offpilot_test_main(", task.test, count=1)
        return cpp_headers(data.filled(task, completion) + "\n" + test + _CPP_RUNNER)
    if tc.language == "rust":
        return text + _RUST_RUNNER
    return tc.prelude + text


def config(tc: Toolchain, run_s: float) -> dict[str, Any]:
    """What the driver reads from toolchain.json."""
    return {
        "needs": [list(n) for n in tc.needs],
        "compile": list(tc.compile),
        "run": list(tc.run),
        "compile_s": tc.compile_s,
        "run_s": run_s,
        "env": tc.env,
        "fail_marker": tc.fail_marker,
        "summary": tc.summary,
        "cap": OUTPUT_CAP,
    }


def run_source(tc: Toolchain, source: str, run_s: float | None = None) -> execution.Outcome:
    """Compile and run one program of `tc`'s language in the sandbox; the mapped outcome."""
    run = tc.run_s if run_s is None else run_s
    cache = go_cache() if tc.language == "go" else None

    def setup(work: Path) -> None:
        (work / tc.source).write_text(source, encoding="utf-8")
        (work / CONFIG).write_text(json.dumps(config(tc, run)), encoding="utf-8")
        name, text = tc.runner
        if name:
            package = source.split(None, 2)[1] if source.startswith("package ") else "main"
            (work / name).write_text(text.replace("{package}", package), encoding="utf-8")
        if cache is not None:
            shutil.copytree(cache, work / "gocache", symlinks=True)

    raw = execution.run_program(_DRIVER, tc.limits(run), setup)
    return outcome(raw)


def run_task(task: data.Task, completion: str, run_s: float | None = None) -> execution.Outcome:
    """The outcome of a task of another language filled with `completion`."""
    tc = toolchain(data.language(task))
    return run_source(tc, program_source(tc, task, completion), run_s)


_REASONS = {
    "ToolchainMissingError": (execution.ERROR, MISSING),
    "CompileError": (execution.ERROR, COMPILE_ERROR),
    "CompileTimeoutError": (execution.TIMEOUT, "compile timeout: "),
    "TestFailedError": (execution.FAILED, TEST_FAILED),
    "TestTimeoutError": (execution.TIMEOUT, "test timeout: "),
    "TestUnfinishedError": (execution.ERROR, "test unfinished: "),
}


def outcome(raw: execution.Outcome) -> execution.Outcome:
    """The driver's outcome with its last exception line read as a result and reason."""
    if raw.result == execution.PASSED:
        return raw
    exc = execution.last_exception(raw.output, width=240) or ""
    name, _, message = exc.partition(": ")
    if name in _REASONS:
        result, prefix = _REASONS[name]
        return replace(raw, result=result, reason=prefix + message)
    if raw.result == execution.ERROR and raw.reason.startswith("killed by"):
        return raw  # the driver itself died (memory): keep execution's reason
    return raw


def is_missing(reason: str) -> bool:
    """Whether a sample's reason says that a toolchain was missing (not the model's fault)."""
    return reason.startswith(MISSING)


def is_compile_error(reason: str) -> bool:
    """Whether a sample's reason says its program did not compile."""
    return reason.startswith(COMPILE_ERROR)


# -- the shared go build cache: the standard library and testify, built once -----------------

_go_lock = threading.Lock()
_go_cache: dict[str, Path | None] = {}


def go_cache() -> Path | None:
    """A build cache holding the standard packages and testify, copied into each Go sample.

    Without it every sample builds `testing`, `fmt` and testify from source (seconds each).
    Built once (as the harness, from a fixed program of ours, not a sample's) under the
    offpilot cache; None when go is missing or the build fails (samples then start cold).
    """
    with _go_lock:
        if _go_cache.get("dir") is None:  # a failure is retried (go may be on PATH later)
            _go_cache["dir"] = _build_go_cache()
        return _go_cache["dir"]


def _build_go_cache() -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    tc = TOOLCHAINS["go"]
    try:
        version = subprocess.run(
            [go, "version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split()[2]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    base = Path(os.environ.get("OFFPILOT_CACHE_DIR") or Path.home() / ".cache" / "offpilot")
    cache = base / "eval-go-build" / version
    stamp = cache / "offpilot-warm"
    if stamp.exists():
        return cache
    imports = "".join(f'    _ "{p}"\n' for p in _GO_WARM)
    warm = f"package main\n\n{_GO_TEST_IMPORTS}import (\n{imports})\n\n"
    warm += "func TestWarm(t *testing.T) {\n    assert.Equal(t, 1, 1)\n}\n"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="offpilot-go-warm-") as tmp:
        Path(tmp, "warm_test.go").write_text(warm, encoding="utf-8")
        env = {**os.environ, **{k: v.replace("{work}", tmp) for k, v in tc.env.items()}}
        env["GOCACHE"] = str(cache)
        Path(env["GOTMPDIR"]).mkdir(exist_ok=True)
        try:
            subprocess.run(
                [go, "test", "-c", "-vet=off", "-o", "warm.test", "warm_test.go"],
                cwd=tmp,
                env=env,
                capture_output=True,
                timeout=600,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("eval: cannot build the go cache (%s); Go samples start cold", exc)
            return None
    os.chmod(cache, 0o755)
    for dirpath, dirnames, filenames in os.walk(cache):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    stamp.write_text(version + "\n", encoding="utf-8")
    return cache
