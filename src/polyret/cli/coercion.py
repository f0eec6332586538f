"""Option values without pydantic: typer >= 0.21 converts every option value (a `--batch-size 64`, even
a `--model` string or an absent option) through a pydantic TypeAdapter it builds on first use, and
importing pydantic and building the adapters was ~40% of `polyret data status` and of every one-line
bad-input error (benchmarks/startup.py). typer has no setting to skip it.

`install()` puts a plain converter in front of typer's: for the value types polyret's options use
(str, int, float, bool, Path and lists of them) and a value whose conversion is unambiguous (`64`,
`0.5`, a path), it returns what typer's adapter returns; anything else (a malformed number, a number
outside the option's range, another type, a `parser=`) goes to typer's own adapter, built then, so
every refusal keeps typer's exact message. A path is checked by typer's own `coerce_cli_path` (the
function typer's path adapter calls), so `exists=True` and friends refuse with typer's message too.
tests/test_cli_startup.py compares both converters value by value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _coercion, core
from typer._param_types import coerce_cli_path

# What pydantic's lax int / float parsing accepts, narrowed to the forms Python parses identically
# (pydantic also takes "1_000", " 5", "nan": those go to typer's adapter).
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MISS = object()  # "not converted here": typer's adapter decides
_PLAIN_TYPES = (str, int, float, bool, Path)


def _number(annotation: type, info, value: Any) -> Any:
    """An int / float option value as typer's adapter gives it, or _MISS."""
    if annotation is int and type(value) is int:
        number = value
    elif annotation is int:
        number = int(value) if isinstance(value, str) and _INT.fullmatch(value) else _MISS
    elif type(value) in (int, float):
        number = float(value)
    else:
        number = float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else _MISS
    if number is _MISS or info.clamp:
        return _MISS
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return _MISS  # out of range: typer's adapter words the refusal
    return number


def plain_value(annotation: Any, info, value: Any, param=None, ctx=None) -> Any:
    """One option value converted as typer's pydantic adapter converts it, or _MISS where that is not
    certain. A path that fails its checks (`exists=True`, ...) raises typer's own BadParameter."""
    if info.parser is not None:
        return _MISS
    if annotation is str:
        return value if type(value) is str else _MISS
    if annotation is bool:
        return value if type(value) is bool else _MISS
    if annotation in (int, float):
        return _number(annotation, info, value)
    if annotation is Path and info.path_type is None:
        if isinstance(value, str) and value:
            value = Path(value)
        if not isinstance(value, Path):
            return _MISS
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
    if get_origin(annotation) is list and len(get_args(annotation)) == 1:
        items = value if isinstance(value, (list, tuple)) else [value]
        out = [plain_value(get_args(annotation)[0], info, item, param, ctx) for item in items]
        return _MISS if any(v is _MISS for v in out) else out
    return _MISS


def _handled(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and args[0] in _PLAIN_TYPES
    return annotation in _PLAIN_TYPES


@dataclass(frozen=True)
class PlainRuntimeParam(_coercion.RuntimeParam):
    """typer's runtime converter for one parameter: the plain conversion, else typer's own."""

    descriptor: Any = None
    build_typer_param: Any = None
    _typer_param: list = field(default_factory=list, compare=False, repr=False)  # built on first miss

    def _coerce_value(self, value: Any, param, ctx) -> Any:
        converted = plain_value(self.annotation, self.parameter_info, value, param, ctx)
        if converted is not _MISS:
            return converted
        if not self._typer_param:
            self._typer_param.append(self.build_typer_param(self.descriptor))
        return self._typer_param[0]._coerce_value(value, param=param, ctx=ctx)


def install() -> None:
    """Route typer's per-parameter converter through `PlainRuntimeParam` (once; a typer without the
    hook this relies on keeps its own converter)."""
    typer_build = getattr(core, "build_runtime_param", None)
    if typer_build is None or getattr(typer_build, "polyret_plain", False):
        return

    def build_runtime_param(descriptor):
        if descriptor.file_annotation is not None or not _handled(descriptor.annotation):
            return typer_build(descriptor)
        return PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
            build_typer_param=typer_build,
        )

    build_runtime_param.polyret_plain = True
    core.build_runtime_param = build_runtime_param
