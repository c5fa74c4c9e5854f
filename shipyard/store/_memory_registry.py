"""The model-registry section of :class:`~shipyard.store._memory.MemoryStore`."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import replace
from types import EllipsisType
from typing import Any

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, NotFoundError
from shipyard.store._checks import (
    ALIAS_OUTCOMES,
    check_event_fields,
    check_expected,
    check_export_format,
    check_lookup_id,
    check_model_version,
    check_model_version_fields,
    check_outcome,
    check_registry_text,
    check_text,
    to_json,
)
from shipyard.store._registry_text import alias_conflict, alias_missing, version_missing
from shipyard.types import AliasEvent, ModelExport, ModelVersion, Project, RegisteredModel
from shipyard.validation import check_alias, check_digest, check_model_name


class MemoryRegistry:
    """Registered models, versions, exports, aliases and their audit log, in memory."""

    _lock: threading.RLock

    def _init_registry(self) -> None:
        self._models: dict[str, RegisteredModel] = {}
        self._model_versions: dict[tuple[str, int], ModelVersion] = {}
        self._exports: dict[tuple[str, str], ModelExport] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._events: list[AliasEvent] = []

    def _project(self, project_id: object) -> Project:  # provided by MemoryStore
        raise NotImplementedError

    def _record(self, run_id: object) -> Any:  # provided by MemoryStore
        raise NotImplementedError

    def _model(self, model_id: object) -> RegisteredModel:
        key = check_lookup_id(model_id, "registered model")
        found = self._models.get(key)
        if found is None:
            raise NotFoundError(f"registered model {key[:64]} not found")
        return found

    def _mv(self, model_id: str, version: object) -> ModelVersion:
        number = check_model_version(version)
        model = self._model(model_id)
        found = self._model_versions.get((model_id, number))
        if found is None:
            raise NotFoundError(version_missing(model.name, number))
        return found

    # -- models -----------------------------------------------------------------

    def create_registered_model(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        check_model_name(name)
        desc, tag_map = check_registry_text(description, tags)
        terms = json.loads(to_json(contract or {}, "contract"))
        with self._lock:
            self._project(project_id)
            if any(m.project_id == project_id and m.name == name for m in self._models.values()):
                raise ConflictError(f"a registered model named {name!r} already exists")
            t = now()
            model = RegisteredModel(
                new_id(),
                project_id,
                name,
                desc or "",
                FrozenDict(tag_map or {}),
                FrozenDict(terms),
                t,
                t,
            )
            self._models[model.id] = model
            return model

    def get_registered_model(self, model_id: str) -> RegisteredModel:
        with self._lock:
            return self._model(model_id)

    def get_registered_model_by_name(self, project_id: str, name: str) -> RegisteredModel:
        check_lookup_id(project_id, "project")
        check_text(name, "model name")
        with self._lock:
            for m in self._models.values():
                if m.project_id == project_id and m.name == name:
                    return m
        raise NotFoundError(
            f"registered model {name[:64]!r} not found; register one with "
            "'shipyard models register runs:/<run>/<path> NAME'"
        )

    def list_registered_models(self, project_id: str | None = None) -> list[RegisteredModel]:
        with self._lock:
            if project_id is not None:
                self._project(project_id)
            found = [m for m in self._models.values() if project_id in (None, m.project_id)]
        return sorted(found, key=lambda m: m.name)

    def update_registered_model(
        self,
        model_id: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        desc, tag_map = check_registry_text(description, tags)
        terms = None if contract is None else json.loads(to_json(contract, "contract"))
        with self._lock:
            model = self._model(model_id)
            changed = replace(
                model,
                description=model.description if desc is None else desc,
                tags=model.tags if tag_map is None else FrozenDict({**model.tags, **tag_map}),
                contract=model.contract if terms is None else FrozenDict(terms),
                updated_at=now(),
            )
            self._models[model.id] = changed
            return changed

    # -- versions ---------------------------------------------------------------

    def create_model_version(
        self,
        model_id: str,
        package_digest: str,
        *,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str = "",
    ) -> ModelVersion:
        meta = check_model_version_fields(package_digest, run_id, source, created_by, metadata)
        desc, tag_map = check_registry_text(description, tags)
        with self._lock:
            self._model(model_id)
            if run_id is not None:
                self._record(run_id)
            number = 1 + max((v for m, v in self._model_versions if m == model_id), default=0)
            mv = ModelVersion(
                id=new_id(),
                model_id=model_id,
                version=number,
                package_digest=package_digest,
                run_id=run_id,
                source=source,
                description=desc or "",
                tags=FrozenDict(tag_map or {}),
                metadata=FrozenDict(json.loads(meta)),
                created_by=created_by,
                created_at=now(),
            )
            self._model_versions[(model_id, number)] = mv
            return mv

    def get_model_version(self, model_id: str, version: int) -> ModelVersion:
        with self._lock:
            return self._mv(model_id, version)

    def list_model_versions(self, model_id: str) -> list[ModelVersion]:
        with self._lock:
            self._model(model_id)
            found = [mv for (m, _), mv in self._model_versions.items() if m == model_id]
        return sorted(found, key=lambda mv: mv.version)

    def list_run_model_versions(self, run_id: str) -> list[ModelVersion]:
        with self._lock:
            self._record(run_id)
            found = [mv for mv in self._model_versions.values() if mv.run_id == run_id]
        return sorted(found, key=lambda mv: (mv.created_at, mv.version))

    def update_model_version(
        self,
        model_id: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        desc, tag_map = check_registry_text(description, tags)
        with self._lock:
            mv = self._mv(model_id, version)
            changed = replace(
                mv,
                description=mv.description if desc is None else desc,
                tags=mv.tags if tag_map is None else FrozenDict({**mv.tags, **tag_map}),
            )
            self._model_versions[(model_id, mv.version)] = changed
            return changed

    def put_model_export(
        self, model_id: str, version: int, fmt: str, package_digest: str, report: Mapping[str, Any]
    ) -> ModelExport:
        check_export_format(fmt)
        check_digest(package_digest)
        text = to_json(report, "report")
        with self._lock:
            mv = self._mv(model_id, version)
            export = ModelExport(mv.id, fmt, package_digest, FrozenDict(json.loads(text)), now())
            self._exports[(mv.id, fmt)] = export
            return export

    def list_model_exports(self, model_id: str, version: int) -> list[ModelExport]:
        with self._lock:
            mv = self._mv(model_id, version)
            found = [e for (v, _), e in self._exports.items() if v == mv.id]
        return sorted(found, key=lambda e: e.format)

    # -- aliases ----------------------------------------------------------------

    def _event(
        self,
        model_id: str,
        alias: str,
        before: int | None,
        after: int | None,
        outcome: str,
        actor: str,
        reason: str,
        report: str,
    ) -> AliasEvent:
        event = AliasEvent(
            len(self._events) + 1,
            model_id,
            alias,
            before,
            after,
            outcome,
            actor,
            reason,
            FrozenDict(json.loads(report)),
            now(),
        )
        self._events.append(event)
        return event

    def set_alias(
        self,
        model_id: str,
        alias: str,
        version: int,
        *,
        expected: int | EllipsisType | None = ...,
        outcome: str = "moved",
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        check_alias(alias)
        check_expected(expected)
        check_outcome(outcome, ALIAS_OUTCOMES[:2])
        text = check_event_fields(actor, reason, report)
        with self._lock:
            mv = self._mv(model_id, version)
            before = self._aliases.get((model_id, alias))
            if expected is not ... and before != expected:
                self._event(model_id, alias, before, mv.version, "conflict", actor, reason, text)
                raise ConflictError(alias_conflict(self._model(model_id).name, alias, before))
            self._aliases[(model_id, alias)] = mv.version
            return self._event(model_id, alias, before, mv.version, outcome, actor, reason, text)

    def record_alias_event(
        self,
        model_id: str,
        alias: str,
        version: int | None,
        *,
        outcome: str,
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        check_alias(alias)
        check_outcome(outcome, ("refused",))
        text = check_event_fields(actor, reason, report)
        with self._lock:
            if version is not None:
                self._mv(model_id, version)
            else:
                self._model(model_id)
            before = self._aliases.get((model_id, alias))
            return self._event(model_id, alias, before, version, outcome, actor, reason, text)

    def delete_alias(
        self, model_id: str, alias: str, *, actor: str = "", reason: str = ""
    ) -> AliasEvent:
        check_alias(alias)
        text = check_event_fields(actor, reason, None)
        with self._lock:
            model = self._model(model_id)
            before = self._aliases.pop((model_id, alias), None)
            if before is None:
                raise NotFoundError(alias_missing(model.name, alias))
            return self._event(model_id, alias, before, None, "removed", actor, reason, text)

    def get_alias(self, model_id: str, alias: str) -> ModelVersion:
        check_alias(alias)
        with self._lock:
            model = self._model(model_id)
            number = self._aliases.get((model_id, alias))
            if number is None:
                raise NotFoundError(alias_missing(model.name, alias))
            return self._model_versions[(model_id, number)]

    def list_aliases(self, model_id: str) -> dict[str, int]:
        with self._lock:
            self._model(model_id)
            found = {a: v for (m, a), v in self._aliases.items() if m == model_id}
        return dict(sorted(found.items()))

    def list_alias_events(self, model_id: str, alias: str | None = None) -> list[AliasEvent]:
        if alias is not None:
            check_alias(alias)
        with self._lock:
            self._model(model_id)
            return [e for e in self._events if e.model_id == model_id and alias in (None, e.alias)]
