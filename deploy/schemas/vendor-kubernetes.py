#!/usr/bin/env python3
"""Vendor strict Kubernetes JSON schemas for the kinds meshray's manifests use.

Source: the PyPI package kubernetes-validate (Apache-2.0), which ships strict
("local-strict": additionalProperties false) JSON schemas generated from the
Kubernetes OpenAPI definitions (Apache-2.0). Each schema there points into one
shared 1.4 MB `_definitions.json`; this script makes one self-contained file per
kind holding only the definitions that kind reaches, with `description` texts
dropped to keep the repository small. Validation keywords are kept unchanged.

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0
    python3 deploy/schemas/vendor-kubernetes.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl

Re-run it (and commit the output) when KINDS or VERSIONS change.
"""

import json
import pathlib
import sys
import zipfile

# Kubernetes versions validated against: the oldest one EKS still runs
# (extended support) and the newest one the package carries.
VERSIONS = ["1.33", "1.37"]

# <kind>-<group>-<version>.json files, named as kubernetes-validate names them.
KINDS = [
    "namespace-v1",
    "serviceaccount-v1",
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "deployment-apps-v1",
    "poddisruptionbudget-policy-v1",
    "networkpolicy-networking-v1",
    "horizontalpodautoscaler-autoscaling-v2",
]

# Kind files point into the shared file; definitions point at each other locally.
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")
OUT = pathlib.Path(__file__).resolve().parent / "kubernetes"


def strip_descriptions(node):
    """Drops `description` strings (documentation only) everywhere."""
    if isinstance(node, dict):
        return {
            key: strip_descriptions(value)
            for key, value in node.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [strip_descriptions(item) for item in node]
    return node


def local_refs(node, found):
    """Rewrites refs into the shared definitions as local `#/$defs/…` refs and collects their names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            prefix = next((p for p in REF_PREFIXES if isinstance(value, str) and value.startswith(p)), None)
            if key == "$ref" and prefix is not None:
                name = value[len(prefix):]
                found.add(name)
                out[key] = "#/$defs/" + name
            else:
                out[key] = local_refs(value, found)
        return out
    if isinstance(node, list):
        return [local_refs(item, found) for item in node]
    return node


def bundle(schema, definitions):
    """One self-contained schema: the kind plus every definition it reaches."""
    pending = set()
    root = local_refs(schema, pending)
    defs = {}
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        if name not in definitions:
            sys.exit(f"definition {name} not found")
        reached = set()
        defs[name] = local_refs(definitions[name], reached)
        pending |= reached - defs.keys()
    root["$defs"] = dict(sorted(defs.items()))
    return strip_descriptions(root)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    wheel = zipfile.ZipFile(sys.argv[1])
    for version in VERSIONS:
        base = f"kubernetes_validate/kubernetes-json-schema/v{version}.0-local-strict/"
        definitions = json.loads(wheel.read(base + "_definitions.json"))["$defs"]
        out_dir = OUT / f"v{version}"
        out_dir.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            schema = json.loads(wheel.read(base + kind + ".json"))
            text = json.dumps(bundle(schema, definitions), indent=1, sort_keys=True) + "\n"
            (out_dir / f"{kind}.json").write_text(text)
        print(f"v{version}: {len(KINDS)} schemas -> {out_dir}")


if __name__ == "__main__":
    main()
