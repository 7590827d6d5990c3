"""Write a measured memory setting into ``template.yaml`` and ``samconfig.toml``.

Both files are edited by a round trip that keeps comments, order and formatting: ruamel.yaml for
the template (CloudFormation's ``!Ref``/``!Sub`` tags and flow mappings included) and tomlkit for
``samconfig.toml``, whose ``parameter_overrides`` strings carry ``Name=Value`` pairs per
environment. Only the named parameter changes; a file already at the value is left untouched.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ContractError

__all__ = ["Applied", "apply_memory", "read_memory"]

PARAMETER = "TransformMemorySize"


@dataclass
class Applied:
    """What ``apply_memory`` changed: each file and its value before."""

    path: str
    where: str
    before: int | None
    after: int

    @property
    def changed(self) -> bool:
        """The value was different."""
        return self.before != self.after


def _yaml() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.emitter import Emitter

    class _SpacedBraces(Emitter):
        """Writes flow mappings as ``{ a: b }``, the template's own style."""

        def write_indicator(self, indicator: Any, need_whitespace: bool,
                            whitespace: bool = False, indention: bool = False) -> None:
            if indicator == "}" and self.column > 0 and not self.whitespace:
                indicator = " }"
            super().write_indicator(indicator, need_whitespace, whitespace, indention)
            if indicator == "{":
                self.stream.write(" ")
                self.column += 1

    yaml = YAML()
    yaml.Emitter = _SpacedBraces
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    return yaml


def _template_parameter(doc: Any, path: Path, parameter: str) -> Any:
    try:
        return doc["Parameters"][parameter]
    except (KeyError, TypeError):
        raise ContractError(f"{path}: no parameter {parameter!r} under Parameters") from None


_OVERRIDE = r"(?<![\w-]){name}=(\"?)(\d+)\1"


def read_memory(template: Path, samconfig: Path | None = None,
                parameter: str = PARAMETER) -> dict[str, int | None]:
    """The parameter's template default and each samconfig environment's override."""
    doc = _yaml().load(template.read_text(encoding="utf-8"))
    values: dict[str, int | None] = {
        "template": int(_template_parameter(doc, template, parameter)["Default"])}
    if samconfig is not None and samconfig.exists():
        import tomlkit

        config = tomlkit.parse(samconfig.read_text(encoding="utf-8"))
        for env, overrides in _overrides(config):
            match = re.search(_OVERRIDE.format(name=re.escape(parameter)), overrides)
            values[f"samconfig:{env}"] = int(match.group(2)) if match else None
    return values


def _overrides(config: Any) -> list[tuple[str, str]]:
    found = []
    for env, table in config.items():
        deploy = table.get("deploy", {}) if hasattr(table, "get") else {}
        params = deploy.get("parameters", {}) if hasattr(deploy, "get") else {}
        value = params.get("parameter_overrides") if hasattr(params, "get") else None
        if isinstance(value, str):
            found.append((env, value))
    return found


def apply_memory(memory_mb: int, template: Path, samconfig: Path | None = None,
                 parameter: str = PARAMETER) -> list[Applied]:
    """Set ``parameter`` to ``memory_mb`` in the template's default and every samconfig env.

    Raises:
        ContractError: the template has no such parameter, or the value is outside its
            ``MinValue``/``MaxValue``.

    """
    yaml = _yaml()
    doc = yaml.load(template.read_text(encoding="utf-8"))
    param = _template_parameter(doc, template, parameter)
    low, high = param.get("MinValue"), param.get("MaxValue")
    if (low is not None and memory_mb < int(low)) or (high is not None and memory_mb > int(high)):
        raise ContractError(f"{parameter}={memory_mb} is outside the template's range "
                            f"{low}..{high}", uri=str(template))
    applied = [Applied(str(template), "Parameters.Default", int(param["Default"]), memory_mb)]
    if applied[0].changed:
        param["Default"] = memory_mb
        out = io.StringIO()
        yaml.dump(doc, out)
        template.write_text(out.getvalue(), encoding="utf-8")
    if samconfig is not None and samconfig.exists():
        applied += _apply_samconfig(memory_mb, samconfig, parameter)
    return applied


def _apply_samconfig(memory_mb: int, samconfig: Path, parameter: str) -> list[Applied]:
    import tomlkit

    config = tomlkit.parse(samconfig.read_text(encoding="utf-8"))
    pattern = re.compile(_OVERRIDE.format(name=re.escape(parameter)))
    applied = []
    for env, table in config.items():
        params = table.get("deploy", {}).get("parameters", {}) if hasattr(table, "get") else {}
        overrides = params.get("parameter_overrides") if hasattr(params, "get") else None
        if not isinstance(overrides, str):
            continue
        match = pattern.search(overrides)
        before = int(match.group(2)) if match else None
        if match:
            new = overrides[:match.start(2)] + str(memory_mb) + overrides[match.end(2):]
        else:
            new = f"{overrides} {parameter}={memory_mb}"
        params["parameter_overrides"] = new
        applied.append(Applied(str(samconfig), f"{env}.deploy.parameter_overrides", before,
                               memory_mb))
    if any(a.changed for a in applied):
        samconfig.write_text(tomlkit.dumps(config), encoding="utf-8")
    return applied
