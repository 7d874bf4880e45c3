#!/usr/bin/env python3
"""The shape of src/: which top-level module imports which (`crate::x` in `use` lines and in
paths), import cycles among them, and imports that run upward through the layers below.

Usage: scripts/check-imports.py [--graph]
Exits 1 when there is a cycle or an upward import. Reads only the source text.

Layers, lowest first: a module may import modules of its own layer or lower ones, never higher.
A module missing from LAYERS is an error too, so a new module is placed on purpose.
"""
import re
import sys
from pathlib import Path

LAYERS = [
    # Leaves: import nothing from the crate.
    {"clock", "secret", "request", "failure", "oauth2_paths", "plugin_answer", "user", "header_names", "host",
     "path", "request_id", "fuzz_inputs", "log_throttle", "fd_limit"},
    # Shared services that only leaves feed.
    # shutdown: the SIGTERM sequence, read by the probes (draining) and run by the server.
    {"metrics", "pages", "logging", "background", "head_deadline", "conn_limits", "shutdown"},
    # Components: each owns its spec and its build.
    {"router", "upstreams", "tls", "session", "plugins", "tunnels", "forwarding", "canonical", "forward_auth"},
    {"oidc"},
    # The file format, which knows every component's spec.
    {"config"},
    # Assembly: builds the snapshot from the config; wires services.
    # health and the session watch are background services over what the assembly built.
    {"runtime", "reload", "probes", "admin", "health", "session_watch"},
    # The request path.
    # identity writes who a request speaks for into its headers: a step of the request path.
    # The /oauth2/* endpoints answer requests, as the gate does, with what oidc provides.
    {"dispatch", "gate", "identity", "oauth2_endpoints", "backchannel_logout", "proxy", "downstream"},
    {"server"},
    # The demo runs the server with its own provider and backends.
    {"demo"},
]

CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def top_module(src: Path, file: Path) -> str:
    rel = file.relative_to(src)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return rel.parts[0][:-3]
    return rel.parts[0].removesuffix(".rs")


def imports_of(text: str) -> set:
    # Comments and doc comments name modules without importing them.
    code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    found = set(CRATE_PATH.findall(code))
    for group in USE_GROUP.findall(code):
        for item in group.split(","):
            name = item.strip().split("::", 1)[0].strip()
            if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                found.add(name)
    return found


def graph(src: Path) -> dict:
    edges = {}
    for file in sorted(src.rglob("*.rs")):
        module = top_module(src, file)
        if module in ("lib", "main"):
            continue
        deps = imports_of(file.read_text(encoding="utf-8")) - {module}
        edges.setdefault(module, set()).update(deps)
    return edges


def cycles(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    src = Path(__file__).resolve().parent.parent / "src"
    edges = graph(src)
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    problems = []
    for module in sorted(edges):
        if module not in layer_of:
            problems.append(f"{module}: not placed in a layer (scripts/check-imports.py LAYERS)")
    for module, deps in sorted(edges.items()):
        for dep in sorted(deps):
            if dep in layer_of and module in layer_of and layer_of[dep] > layer_of[module]:
                problems.append(f"{module} imports {dep}, which sits above it")
    for component in cycles(edges):
        problems.append("import cycle: " + " <-> ".join(component))
    if "--graph" in sys.argv:
        for module, deps in sorted(edges.items()):
            print(f"{module}: {' '.join(sorted(d for d in deps if d in edges))}")
    for p in problems:
        print(p)
    print(f"{len(edges)} modules, {len(cycles(edges))} import cycles, "
          f"{sum('sits above' in p for p in problems)} upward imports")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
