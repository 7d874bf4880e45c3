#!/usr/bin/env python3
"""Checks deploy/ offline: renders the Kustomize base and every overlay with `kubectl kustomize`,
validates each rendered object against the Kubernetes schemas (`kubernetes-validate --strict`),
and runs `portcullis check` on every Portcullis config the render puts in a ConfigMap, with the
upstreams file and plugins it names.

Usage: scripts/check-deploy.py PORTCULLIS_BIN
Custom resources (ServiceMonitor) have no schema in kubernetes-validate; they are checked for
their required fields here instead, and said so.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["base"] + sorted(f"overlays/{d.name}" for d in (ROOT / "deploy" / "overlays").iterdir() if d.is_dir())
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector", "spec.endpoints"]}
SESSION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def field(obj, dotted):
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def check_configs(name, objects, bin_path, problems):
    """`portcullis check` on each ConfigMap'd portcullis.yaml, its paths mapped into a temp dir."""
    files = {}
    for o in objects:
        if o.get("kind") == "ConfigMap":
            for key, value in (o.get("data") or {}).items():
                files[key] = value
    if "portcullis.yaml" not in files:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "plugins").symlink_to(ROOT / "plugins")
        # The certificate a Secret mounts in the cluster: a throwaway one here.
        (tmp / "tls").mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=portcullis.example", "-addext", "subjectAltName=DNS:portcullis.example",
                        "-keyout", str(tmp / "tls" / "tls.key"), "-out", str(tmp / "tls" / "tls.crt")],
                       check=True, capture_output=True)
        for key, value in files.items():
            text = (value.replace("/etc/portcullis/upstreams/", "")
                    .replace("/etc/portcullis/plugins/", "plugins/")
                    .replace("/etc/portcullis/tls/", "tls/"))
            if key == "upstreams.yaml":
                # Backends are cluster DNS names, which resolve only in the cluster: check the
                # file's shape with each host mapped to loopback.
                text = re.sub(r'"[A-Za-z0-9.-]+\.svc(?:\.cluster\.local)?:(\d+)"', r'"127.0.0.1:\1"', text)
            (tmp / key).write_text(text)
        env = dict(os.environ, OIDC_CLIENT_SECRET="x", SESSION_KEY=SESSION_KEY)
        out = subprocess.run([bin_path, "check", "--config", str(tmp / "portcullis.yaml")],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            problems.append(f"{name}: portcullis check refused the ConfigMap'd config:\n{out.stdout}{out.stderr}")
        return 1


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bin_path = sys.argv[1]
    problems = []
    # One dashboard, shipped twice: beside the configs, and where Kustomize may read it.
    if (ROOT / "conf" / "grafana-dashboard.json").read_bytes() != (ROOT / "deploy" / "base" / "grafana-dashboard.json").read_bytes():
        problems.append("deploy/base/grafana-dashboard.json differs from conf/grafana-dashboard.json: copy it over")
    for target in TARGETS:
        rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / target)],
                                  capture_output=True, text=True)
        if rendered.returncode != 0:
            problems.append(f"{target}: kubectl kustomize failed:\n{rendered.stderr}")
            continue
        objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
        standard, custom = [], []
        for o in objects:
            (custom if (o.get("apiVersion"), o.get("kind")) in CUSTOM else standard).append(o)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump_all(standard, f)
            f.flush()
            valid = subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name],
                                   capture_output=True, text=True)
            if valid.returncode != 0:
                problems.append(f"{target}: kubernetes-validate --strict:\n{valid.stdout}{valid.stderr}")
        for o in custom:
            for required in CUSTOM[(o["apiVersion"], o["kind"])]:
                if field(o, required) is None:
                    problems.append(f"{target}: {o['kind']} {field(o, 'metadata.name')} lacks {required}")
        checked = check_configs(target, objects, bin_path, problems)
        print(f"deploy/{target}: {len(standard)} objects valid, {len(custom)} custom resources "
              f"checked by hand, {checked} config(s) through portcullis check")
    for p in problems:
        print(f"check-deploy: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
