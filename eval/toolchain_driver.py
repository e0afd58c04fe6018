"""The driver program of `eval.toolchains`: it compiles and tests a sample inside the sandbox.

It runs as the sample's Python program (through execution's launcher) and reads the
toolchain's `toolchain.json` (`toolchains.config`): it checks the binaries as the sandbox
sees them, compiles, runs, and caps each step's output and time. It ends with one exception
line (`ToolchainMissingError: ...`, `CompileError: ...`, `TestFailedError: ...`, or a
timeout) that `toolchains.outcome` maps to a result; a clean return means the test passed.
"""

DRIVER = r'''
import json, os, re, selectors, shutil, signal, subprocess, sys, time

class ToolchainMissingError(Exception):
    pass

class CompileError(Exception):
    pass

class CompileTimeoutError(Exception):
    pass

class TestFailedError(Exception):
    pass

class TestTimeoutError(Exception):
    pass

def step(argv, limit, env, cap):
    """Run argv with a wall-clock limit; (status or None on timeout, head of output, size)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    head, size, deadline = [], 0, time.monotonic() + limit
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None, b"".join(head), size
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            if size < cap:
                head.append(chunk[: cap - size])
            size += len(chunk)
    try:
        status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, b"".join(head), size
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what it left running
    except OSError:
        pass
    return status, b"".join(head), size

def show(text, size, cap):
    sys.stdout.write(text)
    if size > cap:
        sys.stdout.write(f"\n[output cut at {cap} of {size} bytes]\n")
    sys.stdout.write("\n")
    sys.stdout.flush()

def first_error(text):
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for x in lines:
        if "error" in x.lower():
            return x
    for x in lines:
        if not x.startswith("#"):
            return x
    return "no message"

def one_line(text, width=200):
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."

def how(status):
    if status < 0:
        try:
            return "killed by " + signal.Signals(-status).name
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"

def main():
    with open("toolchain.json", encoding="utf-8") as fh:
        cfg = json.load(fh)
    work = os.getcwd()
    for name, package in cfg["needs"]:
        found = os.path.exists(name) if name.startswith("/") else shutil.which(name)
        if not found:
            raise ToolchainMissingError(f"{os.path.basename(name)} (install {package})")
    env = dict(os.environ)
    env.update({k: v.replace("{work}", work) for k, v in cfg["env"].items()})
    for key in ("GOCACHE", "GOTMPDIR"):
        if key in env:
            os.makedirs(env[key], exist_ok=True)
    cap = cfg["cap"]
    if cfg["compile"]:
        status, out, size = step(cfg["compile"], cfg["compile_s"], env, cap)
        text = out.decode("utf-8", "replace")
        show(text, size, cap)
        if status is None:
            raise CompileTimeoutError(f"compile past {cfg['compile_s']:g} s")
        if status != 0:
            raise CompileError(one_line(first_error(text)))
    status, out, size = step(cfg["run"], cfg["run_s"], env, cap)
    text = out.decode("utf-8", "replace")
    show(text, size, cap)
    if status is None:
        raise TestTimeoutError(f"test run past {cfg['run_s']:g} s")
    marker = cfg["fail_marker"]
    if status != 0 or (marker and marker in text):
        lines = [x for x in text.splitlines() if x.strip()]
        said = re.compile(r"\s*(\w*(Error|Exception)\b|thread .* panicked|panic:|--- FAIL"
                          r"|\w+: .*Assertion)")
        found = [x for x in lines if said.match(x)]
        hint = found[0] if found else lines[-1] if lines else ""
        raise TestFailedError(one_line(how(status) + (f"; {hint}" if hint else "")))

main()
'''
