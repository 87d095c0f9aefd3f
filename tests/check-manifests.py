#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks mace's Kubernetes samples for YAML syntax and required fields.

Usage: tests/check-manifests.py FILE...

Each FILE is one of samples/kubernetes/'s: a KMM Module, a DaemonSet (with
its Namespace), or a Prometheus scrape configuration; which one is told by
its content. Prints "ok: FILE: what" for each file that passes, "bad: FILE:
why" for each problem, and exits 1 if there was any. Nothing is sent to a
cluster: this is no substitute for a cluster run.
"""

import sys

import yaml


def get(doc, path):
    """The value at a dotted path of nested mappings, or None."""
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def check_object(doc, bad):
    for path in ("apiVersion", "kind", "metadata.name"):
        if not get(doc, path):
            bad(f"{get(doc, 'kind') or 'object'} without {path}")


def check_module(doc, bad):
    if doc.get("apiVersion") != "kmm.sigs.x-k8s.io/v1beta1":
        bad(f"Module apiVersion {doc.get('apiVersion')!r}, expected kmm.sigs.x-k8s.io/v1beta1")
    container = get(doc, "spec.moduleLoader.container") or {}
    if get(container, "modprobe.moduleName") != "mace":
        bad("spec.moduleLoader.container.modprobe.moduleName is not mace")
    params = get(container, "modprobe.parameters") or []
    if not any(str(p).startswith("outer_dev=") for p in params):
        bad("modprobe.parameters has no outer_dev=")
    mappings = container.get("kernelMappings")
    if not isinstance(mappings, list) or not mappings:
        bad("spec.moduleLoader.container.kernelMappings is empty")
        mappings = []
    for i, m in enumerate(mappings):
        if ("regexp" in m) == ("literal" in m):
            bad(f"kernelMappings[{i}] needs exactly one of regexp and literal")
        if not m.get("containerImage"):
            bad(f"kernelMappings[{i}] has no containerImage")
    if not isinstance(get(doc, "spec.selector"), dict):
        bad("spec.selector (node labels) is missing")


def check_daemonset(doc, bad, found):
    spec = get(doc, "spec.template.spec") or {}
    labels = get(doc, "spec.template.metadata.labels") or {}
    match = get(doc, "spec.selector.matchLabels") or {}
    if not match or any(labels.get(k) != v for k, v in match.items()):
        bad("spec.selector.matchLabels does not select the template's labels")
    for flag in ("hostPID", "hostNetwork"):
        if spec.get(flag) is not True:
            bad(f"{flag} is not true")
    inits = spec.get("initContainers") or []
    loaders = [c for c in inits if "modprobe" in str(c.get("command")) or "insmod" in str(c.get("command"))]
    if not loaders:
        bad("no init container runs modprobe or insmod")
    for c in loaders:
        if get(c, "securityContext.privileged") is not True:
            bad(f"init container {c.get('name')} is not privileged")
        if "outer_dev" not in str(c.get("command")):
            bad(f"init container {c.get('name')} does not set outer_dev")
    exporters = [c for c in spec.get("containers") or [] if "mace-exporter" in str(c.get("image"))]
    if len(exporters) != 1:
        bad("not exactly one container runs the mace-exporter image")
        return
    c = exporters[0]
    if get(c, "securityContext.privileged") is not True:
        bad("the exporter container is not privileged")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    listen = [a.split("=", 1)[1] for a in c.get("args") or [] if str(a).startswith("--listen=")]
    if "metrics" not in ports:
        bad("the exporter has no container port named metrics")
    elif listen and not listen[0].endswith(f":{ports['metrics']}"):
        bad(f"--listen={listen[0]} is not the metrics port {ports['metrics']}")
    volumes = {v.get("name"): get(v, "hostPath.path") for v in spec.get("volumes") or []}
    mounted = {volumes.get(m.get("name")) for m in c.get("volumeMounts") or []}
    for host in ("/dev", "/proc"):
        if host not in mounted:
            bad(f"the exporter does not mount the host's {host}")
    hist = [a for a in c.get("args") or [] if str(a).startswith("--hist=")]
    dev_mount = [m.get("mountPath") for m in c.get("volumeMounts") or [] if volumes.get(m.get("name")) == "/dev"]
    if hist and dev_mount and not hist[0].split("=", 1)[1].startswith(dev_mount[0] + "/"):
        bad(f"{hist[0]} is not under the host /dev mount {dev_mount[0]}")
    found["app"] = labels.get("app.kubernetes.io/name")


def check_scrape(doc, bad, found):
    jobs = doc.get("scrape_configs")
    if not isinstance(jobs, list) or not jobs:
        bad("scrape_configs is empty")
        return
    for job in jobs:
        if not job.get("job_name"):
            bad("a scrape config has no job_name")
        sd = job.get("kubernetes_sd_configs")
        if sd is None:
            if not job.get("static_configs"):
                bad(f"job {job.get('job_name')} has neither kubernetes_sd_configs nor static_configs")
            continue
        if not any(s.get("role") == "pod" for s in sd):
            bad(f"job {job.get('job_name')}: no kubernetes_sd_configs of role pod")
        keep = [r for r in job.get("relabel_configs") or [] if r.get("action") == "keep"]
        want = f"{found.get('app', 'mace')};metrics"
        if not any(
            r.get("regex") == want
            and r.get("source_labels")
            == [
                "__meta_kubernetes_pod_label_app_kubernetes_io_name",
                "__meta_kubernetes_pod_container_port_name",
            ]
            for r in keep
        ):
            bad(f"job {job.get('job_name')}: no keep rule on the DaemonSet's app label and port name ({want})")


def main(files):
    problems = 0
    found = {}
    # DaemonSets first: the scrape configuration must find their pods.
    files = sorted(files, key=lambda f: "daemonset" not in f)
    for path in files:
        mine = []

        def bad(why):
            mine.append(why)

        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            docs = []
            bad(f"not YAML: {e}".replace("\n", " "))
        what = []
        for doc in docs:
            if not isinstance(doc, dict):
                bad("a document is not a mapping")
            elif "scrape_configs" in doc:
                check_scrape(doc, bad, found)
                what.append("Prometheus scrape configuration")
            else:
                check_object(doc, bad)
                kind = doc.get("kind")
                if kind == "Module":
                    check_module(doc, bad)
                elif kind == "DaemonSet":
                    check_daemonset(doc, bad, found)
                what.append(str(kind))
        if not docs and not mine:
            bad("no document")
        for why in mine:
            print(f"bad: {path}: {why}")
        if not mine:
            print(f"ok: {path}: {', '.join(what)}")
        problems += len(mine)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
