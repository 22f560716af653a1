"""Where the three CloudFormation templates live, and a YAML reader that understands their tags.

The templates are plain CloudFormation YAML shipped as package data: ``hub/template.yaml`` (the hub
stack) and ``stacksets/spoke.yaml`` / ``stacksets/forwarder.yaml`` (the StackSets). ``load`` turns
the short-form tags (``!Ref``, ``!Sub``, ...) into their long form (``{"Ref": ...}``,
``{"Fn::Sub": ...}``), so code and tests can inspect a template as AWS would read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

HUB_STACK_NAME = "orgcontain-hub"
SPOKE_STACK_SET = "orgcontain-spoke"
FORWARDER_STACK_SET = "orgcontain-forwarder"


@dataclass(frozen=True)
class Template:
    name: str
    path: Path

    def body(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def parsed(self) -> dict[str, Any]:
        return load(self.body())


def _package_file(package: str, name: str) -> Path:
    return Path(str(resources.files(package).joinpath(name)))


def hub() -> Template:
    return Template("hub", _package_file("hub", "template.yaml"))


def spoke() -> Template:
    return Template("spoke", _package_file("stacksets", "spoke.yaml"))


def forwarder() -> Template:
    return Template("forwarder", _package_file("stacksets", "forwarder.yaml"))


def all_templates() -> list[Template]:
    return [hub(), spoke(), forwarder()]


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form intrinsic-function tags."""


def _long_form(tag: str) -> str:
    return "Ref" if tag == "Ref" else f"Fn::{tag}"


def _construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    key = _long_form(tag_suffix)
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            # !GetAtt Resource.Attribute -> ["Resource", "Attribute"]
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_CfnLoader.add_multi_constructor("!", _construct)


def load(text: str) -> dict[str, Any]:
    """Parse a CloudFormation YAML template into its long (JSON) form."""
    data = yaml.load(text, Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise ValueError("not a CloudFormation template (expected a mapping)")
    return data


def parameter_names(template: dict[str, Any]) -> set[str]:
    return set(template.get("Parameters", {}))


def output_names(template: dict[str, Any]) -> set[str]:
    return set(template.get("Outputs", {}))


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: res for name, res in template.get("Resources", {}).items() if res.get("Type") == resource_type
    }
