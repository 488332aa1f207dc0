#!/usr/bin/env python3
"""Writes tests/fixtures/kubernetes/patch-keys-v1.33.json: how the API server's strategic merge
patch treats each field of the objects the fake API server stores, taken from the Kubernetes
v1.33 OpenAPI (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) rather than written
by hand. The OpenAPI comes as JSON Schema in the `kubernetes-validate` wheel from PyPI (pinned), so
regenerating needs pip and network; the tests only read the committed file.

Usage: scripts/kube-patch-keys.py
"""
import json, os, subprocess, sys, tempfile, zipfile

WHEEL = "kubernetes-validate==1.37.0"
SCHEMA = "kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json"
ROOTS = {
    "Deployment": "io.k8s.api.apps.v1.Deployment",
    "StatefulSet": "io.k8s.api.apps.v1.StatefulSet",
    "Pod": "io.k8s.api.core.v1.Pod",
    "Service": "io.k8s.api.core.v1.Service",
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests/fixtures/kubernetes/patch-keys-v1.33.json")


def ref_of(prop):
    """The definition a property holds (directly, as list items or as map values)."""
    for node in (prop, prop.get("items") or {}, prop.get("additionalProperties") or {}):
        if isinstance(node, dict) and "$ref" in node:
            return node["$ref"].rsplit("/", 1)[-1]
        for alt in node.get("allOf", []) if isinstance(node, dict) else []:
            if "$ref" in alt:
                return alt["$ref"].rsplit("/", 1)[-1]
    return None


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            defs = json.loads(z.read(SCHEMA))["$defs"]
    types, todo = {}, list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in types:
            continue
        fields = {}
        for field, prop in sorted(defs[name].get("properties", {}).items()):
            entry = {}
            ref = ref_of(prop)
            if ref:
                entry["type"] = ref
                todo.append(ref)
            if "x-kubernetes-patch-strategy" in prop:
                entry["strategy"] = prop["x-kubernetes-patch-strategy"]
            if "x-kubernetes-patch-merge-key" in prop:
                entry["key"] = prop["x-kubernetes-patch-merge-key"]
            if entry:
                fields[field] = entry
        types[name] = fields
    doc = {
        "source": f"Kubernetes v1.33 OpenAPI, as JSON Schema in PyPI {WHEEL} ({SCHEMA}); Apache-2.0. Regenerate with scripts/kube-patch-keys.py.",
        "roots": ROOTS,
        "types": dict(sorted(types.items())),
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(types)} types")


if __name__ == "__main__":
    main()
