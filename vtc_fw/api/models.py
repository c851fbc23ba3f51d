"""The documents the API serves: the builders' pydantic documents, every field optional.

maggma's ``Resource`` makes its model's fields optional in place (``api_sanitize``), nested
models included; handing it :mod:`vtc_fw.documents` classes would loosen the builders' own
validation in the same process. :func:`api_model` gives it a copy instead: same field names,
types and descriptions, nested documents as plain mappings.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, create_model

from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.model import ModelDocument
from vtc_fw.documents.prediction import PredictionDocument
from vtc_fw.documents.xes import XesDocument


class StructureDocument(BaseModel):
    """One ``structures`` document, as :func:`vtc_fw.submit.structure_document` writes it."""

    structure_id: str = Field(description='Structure id, e.g. "oqmd-icsd:<name>".')
    structure: dict[str, Any] | None = Field(
        default=None, description="pymatgen Structure.as_dict() (null: unreadable entry)."
    )
    source: str | None = Field(default=None, description='Source, e.g. "oqmd-icsd".')
    provenance: dict[str, Any] | None = Field(default=None, description="Where it came from.")
    error: str | None = Field(default=None, description="Why the entry could not be read.")
    formula: str | None = Field(default=None, description="Reduced formula.")
    three_d_metals: list[str] | None = Field(
        default=None, description="3d transition metals present (one record each)."
    )
    oxidation: dict[str, Any] | None = Field(
        default=None, description="Shipped oxidation states and the method that assigned them."
    )
    last_updated: datetime | None = Field(default=None, description="When it was stored (UTC).")


def api_model(document: type[BaseModel], name: str, *extra: type[BaseModel]) -> type[BaseModel]:
    """A copy of ``document`` (plus the fields of ``extra``) safe to hand to maggma.

    Nested pydantic models become ``dict[str, Any]`` (lists of them ``list[dict]``); the
    copy's fields are optional, with the original descriptions.
    """
    fields: dict[str, Any] = {}
    for model in (document, *extra):
        for field_name, info in model.model_fields.items():
            annotation = _without_models(info.annotation)
            fields[field_name] = (annotation | None, Field(None, description=info.description))
    return create_model(name, __doc__=document.__doc__, **fields)


def _without_models(annotation: Any) -> Any:
    """``annotation`` with every pydantic model in it replaced by ``dict[str, Any]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict[str, Any]
    args = typing.get_args(annotation)
    if not args:
        return annotation
    if not any(_mentions_model(arg) for arg in args):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        replaced = [_without_models(arg) for arg in args]
        union = replaced[0]
        for arg in replaced[1:]:
            union = union | arg
        return union
    return origin[tuple(_without_models(arg) for arg in args)]


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


PredictionData = api_model(PredictionDocument, "PredictionData")
XesData = api_model(XesDocument, "XesData")
FeatureData = api_model(FeatureDocument, "FeatureData")
StructureData = api_model(StructureDocument, "StructureData")
ModelData = api_model(ModelDocument, "ModelData")
