"""hack/helm.compare.py — the object comparisons of `hack/helm check` (run by hack/helm, not alone).

  python3 hack/helm.compare.py equal KUSTOMIZE.yaml HELM.yaml [--allow-missing KIND/NAME]
      [--namespace NS]
  python3 hack/helm.compare.py values HELM.yaml

`equal`: both files are multi-document YAML streams; every object is keyed by
apiVersion/kind/namespace/name and compared object by object (parsed, so key order, quoting and
comments do not matter; list order does). With --namespace NS, every string "tenant-gateway-system"
in the kustomize objects (metadata.namespace, subjects, the Namespace's name) becomes NS first: the
chart must follow the release namespace everywhere. --allow-missing KIND/NAME (repeatable): an
object of kustomize's that the chart does not render and that is expected not to be there.
Prints a unified diff of the first differing object and exits 1 on any difference.

`values`: HELM.yaml was rendered with the non-default values of hack/helm's VALUES_ARGS; asserts
that each landed where the operator reads it.
"""
import difflib
import sys

import yaml

CONFIG_NAMESPACE = "tenant-gateway-system"


def key(o):
    meta = o.get("metadata") or {}
    return "{}/{}/{}/{}".format(
        o.get("apiVersion"), o.get("kind"), meta.get("namespace", ""), meta.get("name")
    )


def keyed(docs, what):
    objs = {}
    for o in docs:
        k = key(o)
        if k in objs:
            sys.exit(f"{what}: {k} twice")
        objs[k] = o
    if not objs:
        sys.exit(f"{what}: no objects")
    return objs


def load(path):
    with open(path) as f:
        return keyed([d for d in yaml.safe_load_all(f) if d is not None], path)


def replace_namespace(v, ns):
    if isinstance(v, dict):
        return {k: replace_namespace(x, ns) for k, x in v.items()}
    if isinstance(v, list):
        return [replace_namespace(x, ns) for x in v]
    return ns if v == CONFIG_NAMESPACE else v


def dump(o):
    return yaml.safe_dump(o, sort_keys=True, default_flow_style=False).splitlines(keepends=True)


def equal(args):
    kust_path, helm_path = args[0], args[1]
    allow, ns, rest = set(), None, args[2:]
    while rest:
        if rest[0] == "--allow-missing":
            allow.add(rest[1])
        elif rest[0] == "--namespace":
            ns = rest[1]
        else:
            sys.exit(f"unknown argument {rest[0]}")
        rest = rest[2:]
    kust, helm = load(kust_path), load(helm_path)
    if ns:
        kust = keyed([replace_namespace(o, ns) for o in kust.values()], kust_path)
    failed = False
    allowed_seen = set()
    for key in sorted(kust.keys() - helm.keys()):
        o = kust[key]
        kind_name = f"{o['kind']}/{o['metadata']['name']}"
        if kind_name in allow:
            allowed_seen.add(kind_name)
            print(f"  expected, not rendered by the chart: {key}")
            continue
        print(f"missing from the chart: {key}")
        failed = True
    for a in sorted(allow - allowed_seen):
        print(f"--allow-missing {a}: but the chart renders it, or config/ has no such object")
        failed = True
    for key in sorted(helm.keys() - kust.keys()):
        print(f"rendered by the chart, not in config/: {key}")
        failed = True
    for key in sorted(kust.keys() & helm.keys()):
        if kust[key] != helm[key]:
            print(f"differs: {key}")
            sys.stdout.writelines(
                difflib.unified_diff(
                    dump(kust[key]), dump(helm[key]),
                    f"kubectl kustomize config: {key}", f"helm template: {key}",
                )
            )
            sys.exit(1)
    if failed:
        sys.exit(1)
    print(f"  {len(kust.keys() & helm.keys())} objects equal")


def values(args):
    objs = load(args[0])
    dep = next(o for o in objs.values() if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    want = [
        ("replicas", dep["spec"]["replicas"], 2),
        ("image", c["image"], "reg.example/tg:1.2.3"),
        ("image pull policy", c["imagePullPolicy"], "Always"),
        ("TG_IMAGE (sidecar)", env.get("TG_IMAGE"), "reg.example/sidecar:1.2.3"),
        ("TG_ENVOY_IMAGE", env.get("TG_ENVOY_IMAGE"), "reg.example/envoy:1.40.1"),
        ("TG_IMAGE_PULL_POLICY", env.get("TG_IMAGE_PULL_POLICY"), "Always"),
        ("TG_ALLOW_HOST_NETWORK", env.get("TG_ALLOW_HOST_NETWORK"), "true"),
        ("RUST_LOG", env.get("RUST_LOG"), "info,tenant_gateway=debug"),
        ("resources", c["resources"], {"limits": {"memory": "512Mi"}}),
        ("nodeSelector", pod["spec"].get("nodeSelector"), {"pool": "system"}),
        ("tolerations", pod["spec"].get("tolerations"),
         [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
        ("affinity", pod["spec"].get("affinity", {}).get("nodeAffinity", {})
         .get("requiredDuringSchedulingIgnoredDuringExecution", {})
         .get("nodeSelectorTerms", [{}])[0].get("matchExpressions"),
         [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]),
        ("podAnnotations", pod["metadata"].get("annotations"), {"example.com/scrape": "true"}),
        ("podLabels", pod["metadata"]["labels"].get("example.com/pod"), "yes"),
        ("selector unchanged", dep["spec"]["selector"]["matchLabels"],
         {"app.kubernetes.io/name": "tenant-gateway", "app.kubernetes.io/component": "operator"}),
    ]
    bad = [(what, have, exp) for what, have, exp in want if have != exp]
    for key, o in objs.items():
        if o["metadata"].get("labels", {}).get("example.com/team") != "platform":
            bad.append((f"labels of {key}", o["metadata"].get("labels"), "example.com/team: platform"))
    if pod["metadata"]["labels"].get("example.com/team") != "platform":
        bad.append(("labels of the pod template", pod["metadata"]["labels"], "example.com/team: platform"))
    for what, have, exp in bad:
        print(f"values: {what}: rendered {have!r}, want {exp!r}")
    if bad:
        sys.exit(1)
    print(f"  {len(want)} values rendered where the operator reads them; labels on {len(objs)} objects")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    {"equal": equal, "values": values}[sys.argv[1]](sys.argv[2:])
