"""The GatewayRoute CRD against what uses it: the chart's RBAC, its README example, Helm.

* the CRD ships in crds/ as plain YAML (Helm installs it, never templates it), and a
  plain ``helm template`` does not render it;
* the operator's rendered Role grants exactly the CRD's group and plural, and the status
  subresource the CRD declares;
* the printer columns point at fields the schema has;
* the README's example GatewayRoute and its Secret are valid (the route against the CRD's
  own openAPIV3Schema, the Secret labelled as the operator requires and holding the key the
  route names); a few invalid routes are refused by the same schema.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest
import yaml

from .chart import CHART, OPERATOR, by_kind
from .conftest import Render

CRD_PATH = CHART / "crds" / "gatewayroutes.gateway.galaxy.dev.yaml"
ROUTE_SECRET_LABEL = "gateway.galaxy.dev/route-secret"


def _crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _schema() -> dict[str, Any]:
    (version,) = [v for v in _crd()["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def _readme_example() -> list[dict[str, Any]]:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Declarative routes", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "no yaml example in the README's Declarative routes section"
    return [doc for doc in yaml.safe_load_all(block.group(1)) if doc]


def _validate(route: dict[str, Any]) -> None:
    # OpenAPI v3 schemas are JSON Schema for what the CRD uses; x-kubernetes-* are ignored.
    jsonschema.validate(route, _schema(), cls=jsonschema.Draft7Validator)


def test_the_crd_is_plain_yaml_that_helm_installs_but_never_templates(
    render_chart: Render,
) -> None:
    assert "{{" not in CRD_PATH.read_text()
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_PATH.name]
    crd = _crd()
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["scope"] == "Namespaced"
    assert "gwroute" in crd["spec"]["names"]["shortNames"]
    assert not by_kind(render_chart(), "CustomResourceDefinition")


def test_operator_rbac_names_the_crd_exactly(render_chart: Render) -> None:
    crd = _crd()
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert "status" in version["subresources"]
    for values in ({}, {"operator.clusterWide": True}):
        docs = render_chart(set_json=values)
        roles = [
            d
            for d in docs
            if d["kind"] in {"Role", "ClusterRole"}
            and d["metadata"]["labels"]["app.kubernetes.io/component"] == OPERATOR
        ]
        assert len(roles) == 1, values
        custom = [r for r in roles[0]["rules"] if r["apiGroups"] != [""]]
        assert {g for r in custom for g in r["apiGroups"]} == {group}
        assert sorted(res for r in custom for res in r["resources"]) == [
            plural,
            f"{plural}/status",
        ]


def test_printer_columns_point_at_fields_of_the_schema() -> None:
    schema = _schema()
    (version,) = [v for v in _crd()["spec"]["versions"] if v["storage"]]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        node = schema
        for part in re.sub(r"\[\?\(.*?\)\]", "[]", path).strip(".").split("."):
            name, is_list = part.removesuffix("[]"), part.endswith("[]")
            node = node["properties"][name]
            if is_list:
                assert node["type"] == "array", path
                node = node["items"]
        assert node["type"] == column["type"] or (
            column["type"] == "date" and node.get("format") == "date-time"
        ), path


def test_the_readme_example_is_a_valid_route_and_its_secret() -> None:
    docs = _readme_example()
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    (route,) = [d for d in docs if d["kind"] == "GatewayRoute"]
    crd = _crd()
    assert route["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
    _validate(route)
    assert secret["metadata"]["labels"][ROUTE_SECRET_LABEL] == "true"
    assert secret["metadata"]["namespace"] == route["metadata"]["namespace"]
    ref = route["spec"]["hmacSecretRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert len(secret["stringData"][ref["key"]].encode()) >= 32


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("messageType",), "has space"),
        (("messageType",), ""),
        (("target", "port"), 0),
        (("target", "service"), "Leaderboard"),
        (("target", "path"), "no-leading-slash"),
        (("target", "scheme"), "ftp"),
        (("timeout",), "3 seconds"),
        (("maxPayloadBytes",), 0),
        (("hmacSecretRef", "key"), "a/b"),
    ],
)
def test_the_schema_refuses_invalid_routes(path: tuple[str, ...], value: object) -> None:
    (route,) = [d for d in _readme_example() if d["kind"] == "GatewayRoute"]
    bad = copy.deepcopy(route)
    node = bad["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad)


@pytest.mark.parametrize("field", ["messageType", "target", "hmacSecretRef"])
def test_the_schema_requires_the_route_essentials(field: str) -> None:
    (route,) = [d for d in _readme_example() if d["kind"] == "GatewayRoute"]
    bad = copy.deepcopy(route)
    del bad["spec"][field]
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad)
