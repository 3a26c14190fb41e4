"""The Tiltfile, evaluated against stand-ins of Tilt's functions (no Tilt, no cluster).

Checks that every path it names exists, that every image it builds is used by a manifest
it deploys and every image a manifest uses is built (or is the one external dev image),
that live_update syncs each package into the folder the dev image makes writable, and
that every resource it configures and depends on exists.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart import ROOT

EXTERNAL_IMAGES = {"docker.io/valkey/valkey:8.1"}  # the dev Redis, pulled by the cluster
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"


@dataclass
class Tilt:
    helm_env: dict[str, str]
    tmp: Path
    builds: list[dict[str, Any]] = field(default_factory=list)
    docs: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    local_resources: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def globals(self) -> dict[str, Any]:
        g: dict[str, Any] = {"os": _Os(), "str": str}

        def load(module: str, *names: str) -> None:
            assert module == "ext://restart_process", module
            g.update({n: getattr(self, n) for n in names})

        g.update(
            load=load,
            local_resource=self.local_resource,
            docker_build=self.docker_build,
            sync=lambda src, dest: ("sync", src, dest),
            fall_back_on=lambda files: ("fall_back_on", files),
            run=lambda *a, **k: ("run", a, k),
            k8s_yaml=self.k8s_yaml,
            helm=self.helm,
            local=self.local,
            k8s_resource=self.k8s_resource,
            watch_file=self.paths.append,
        )
        return g

    # -- stand-ins ---------------------------------------------------------------------------
    def docker_build(self, ref: str, context: str, **kwargs: Any) -> None:
        self.builds.append({"ref": ref, "context": context, **kwargs})

    def docker_build_with_restart(
        self, ref: str, context: str, entrypoint: Any, live_update: list[Any], **kwargs: Any
    ) -> None:
        self.docker_build(ref, context, entrypoint=entrypoint, live_update=live_update, **kwargs)

    def local_resource(self, name: str, cmd: str = "", deps: Any = (), **kwargs: Any) -> None:
        self.local_resources.append({"name": name, "cmd": cmd, "deps": list(deps), **kwargs})
        self.paths.extend(deps)
        self.paths.append(cmd.split(maxsplit=1)[0])

    def local(self, cmd: str, **kwargs: Any) -> str:
        self.paths.append(cmd.split(maxsplit=1)[0])
        env = {**os.environ, "EDGE_K8S_DEV_DIR": str(self.tmp / "k8s-dev")}
        return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True,
                              cwd=ROOT, env=env).stdout  # fmt: skip

    def helm(
        self, chart: str, name: str = "", values: Any = (), skip_crds: bool = False, **kwargs: Any
    ) -> str:
        self.paths.append(chart)
        args = [str(ROOT / ".tools/bin/helm"), "template", name, chart]
        if not skip_crds:
            args.append("--include-crds")  # what Tilt's helm() does unless skip_crds=True
        for path in values:
            self.paths.append(path)
            args += ["-f", path]
        return subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT,
                              env=self.helm_env).stdout  # fmt: skip

    def k8s_yaml(self, what: Any) -> None:
        texts = []
        for item in what if isinstance(what, list) else [what]:
            if item.endswith((".yaml", ".yml")) and "\n" not in item:
                self.paths.append(item)
                texts.append((ROOT / item).read_text())
            else:
                texts.append(item)
        for text in texts:
            self.docs.extend(d for d in yaml.safe_load_all(text) if d)

    def k8s_resource(self, workload: str = "", **kwargs: Any) -> None:
        self.resources.append({"workload": workload, **kwargs})


class _Os:
    @staticmethod
    def getenv(name: str, default: str = "") -> str:
        return default


@pytest.fixture(scope="module")
def tilt(helm: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Tilt:
    tilt = Tilt(helm_env=helm, tmp=tmp_path_factory.mktemp("tilt"))
    source = (ROOT / "Tiltfile").read_text()
    exec(compile(source, "Tiltfile", "exec"), tilt.globals())
    return tilt


def _images(docs: list[dict[str, Any]]) -> set[str]:
    out = set()
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        out |= {c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])}
    return out


def _repository(ref: str) -> str:
    return re.sub(r"(@sha256:[0-9a-f]+|:[^/:]+)$", "", ref)


def test_every_path_the_tiltfile_names_exists(tilt: Tilt) -> None:
    for build in tilt.builds:
        tilt.paths += [build["context"], build["dockerfile"], *build.get("only", [])]
        for step in build.get("live_update", []):
            if step[0] == "sync":
                tilt.paths.append(step[1])
            elif step[0] == "fall_back_on":
                tilt.paths += step[1]
    missing = sorted({p for p in tilt.paths if not (ROOT / p).exists()})
    # docker/wheelhouse is made by scripts/images-wheelhouse.sh (the "wheelhouse" resource).
    assert [p for p in missing if p != "docker/wheelhouse"] == []
    assert len(tilt.builds) == 5


def test_every_built_image_is_deployed_and_every_deployed_image_is_built(tilt: Tilt) -> None:
    built = {b["ref"] for b in tilt.builds}
    deployed = _images(tilt.docs)
    used = {_repository(i) for i in deployed}
    assert sorted(built - used) == [], "built but not deployed"
    assert (
        sorted(i for i in deployed if _repository(i) not in built and i not in EXTERNAL_IMAGES)
        == []
    )


def test_builds_use_the_dev_target_and_sync_into_writable_packages(tilt: Tilt) -> None:
    for build in tilt.builds:
        dockerfile = (ROOT / build["dockerfile"]).read_text()
        assert re.search(rf"^FROM \S+ AS {build['target']}$", dockerfile, re.M), build["dockerfile"]
        assert "BASE_IMAGE" in build["build_args"]
        assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, re.M)
        chown = re.search(r"chown -R 10001:10001 (.+)$", dockerfile, re.M)
        assert chown, build["dockerfile"]
        writable = set(chown.group(1).split())
        entry = re.search(r"^ENTRYPOINT (\[.+\])$", dockerfile, re.M)
        assert entry and yaml.safe_load(entry.group(1)) == build["entrypoint"]
        syncs = [s for s in build["live_update"] if s[0] == "sync"]
        assert build["live_update"][0][0] == "fall_back_on"
        for _, src, dest in syncs:
            package = Path(src).name
            assert dest == f"{SITE_PACKAGES}/{package}"
            assert package in writable, f"{dest} is not writable in the dev image"
            assert (ROOT / src / "__init__.py").exists()


def test_resources_and_dependencies_exist(tilt: Tilt) -> None:
    workloads = {d["metadata"]["name"] for d in tilt.docs if d["kind"] == "Deployment"}
    objects = {f"{d['metadata']['name']}:{d['kind'].lower()}" for d in tilt.docs}
    names = {r["name"] for r in tilt.local_resources}
    for resource in tilt.resources:
        if resource["workload"]:
            assert resource["workload"] in workloads
        for selector in resource.get("objects", []):
            assert selector in objects, selector
        names.add(resource.get("new_name") or resource["workload"])
    for resource in tilt.resources:
        for dep in resource.get("resource_deps", []):
            assert dep in names, dep
    forwards = [f.split(":")[0] for r in tilt.resources for f in r.get("port_forwards", [])]
    assert len(forwards) == len(set(forwards)), forwards
    configured = {r["workload"] for r in tilt.resources if r["workload"]}
    assert configured == workloads


def test_the_crd_is_deployed_before_the_operator(tilt: Tilt) -> None:
    crds = [d for d in tilt.docs if d["kind"] == "CustomResourceDefinition"]
    assert [d["metadata"]["name"] for d in crds] == ["gatewayroutes.gateway.galaxy.dev"]
    owner = {
        selector: r.get("new_name") or r["workload"]
        for r in tilt.resources
        for selector in r.get("objects", [])
    }
    crd_resource = owner["gatewayroutes.gateway.galaxy.dev:customresourcedefinition"]
    (operator,) = [r for r in tilt.resources if r.get("new_name") == "edge-operator"]
    assert crd_resource in operator["resource_deps"]
    # Every object of the operator other than its Deployment is placed in some resource.
    for doc in tilt.docs:
        labels = doc["metadata"].get("labels", {})
        if (
            labels.get("app.kubernetes.io/component") == "edge-operator"
            and doc["kind"] != "Deployment"
        ):
            assert f"{doc['metadata']['name']}:{doc['kind'].lower()}" in owner, doc["kind"]
