"""The registry client: register packages as versions, move aliases, trace lineage.

The registry holds metadata only; packages stay in the blob store, named by the
digest of their tree, so a version can never change under its number. What the
registry needs from a package (flavor, signature, contract) it reads from the
package's ``shipyard-model.json`` once, at registration, and keeps with the
version, so listing versions reads no blobs.

Promotion through the production gates lives in :mod:`shipyard.export` (it loads
and runs models); here an alias that a contract gates (``production`` unless the
contract lists others under ``gated_aliases``) can only be moved by a promotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shipyard._util import current_user
from shipyard._workspace import Workspace
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.types import AliasEvent, ModelVersion, RegisteredModel
from shipyard.uris import ModelUri, parse_models_uri, parse_runs_uri
from shipyard.validation import check_alias, check_model_name

__all__ = ["MANIFEST_NAME", "Lineage", "RegistryClient", "gated_aliases"]

#: The package manifest's file name inside a package tree (written by shipyard.models).
MANIFEST_NAME = "shipyard-model.json"
#: Manifest fields copied onto the version, so listings need no blob reads.
_COPIED = ("format", "flavor", "signature", "contract", "requirements")
DEFAULT_GATED = ("production",)


def gated_aliases(contract: Any) -> tuple[str, ...]:
    """The aliases only a gated promotion may move (``production`` by default)."""
    names = contract.get("gated_aliases") if hasattr(contract, "get") else None
    if names is None:
        return DEFAULT_GATED
    return tuple(str(n) for n in names)


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from, as far as the store knows."""

    model: RegisteredModel
    version: ModelVersion
    aliases: list[str]
    run: dict[str, Any] | None = None
    experiment: dict[str, Any] | None = None
    code: dict[str, Any] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    exports: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "version": self.version.version,
            "package_digest": self.version.package_digest,
            "source": self.version.source,
            "aliases": self.aliases,
            "run": self.run,
            "experiment": self.experiment,
            "code": self.code,
            "datasets": self.datasets,
            "params": self.params,
            "metrics": self.metrics,
            "exports": self.exports,
        }


class RegistryClient(Workspace):
    """Registered models of one project, on one store and blob store.

    Args:
        tracking_uri: The metadata store (default: the tracking URI in use).
        blob_uri: Where packages live (default: ``SHIPYARD_BLOB_URI`` or the home's).
        store, blobs: Objects to use instead of opening the URIs.
        project: The project (default: ``SHIPYARD_PROJECT`` or ``default``).
    """

    # -- models -----------------------------------------------------------------

    def model(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model_by_name(self._project_id(), check_model_name(name))

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_registered_models(self._project_id())

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        contract: dict[str, Any] | None = None,
    ) -> RegisteredModel:
        return self.store.create_registered_model(
            self._project_id(), name, description=description, tags=tags, contract=contract
        )

    def set_contract(self, name: str, contract: dict[str, Any]) -> RegisteredModel:
        """Replace the production contract of registered model ``name`` (its keys are
        laid over each version's own contract when the gates run; ``{}`` clears it).
        Callers validate the terms (:class:`shipyard.models.Contract`); this layer only
        checks ``gated_aliases``."""
        names = contract.get("gated_aliases")
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) for n in names)
        ):
            raise InvalidArgumentError(
                f"invalid contract gated_aliases: expected a list of alias names, got {names!r}"
            )
        for alias in names or []:
            check_alias(alias)
        return self.store.update_registered_model(self.model(name).id, contract=contract)

    def versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_model_versions(self.model(name).id)

    def resolve(self, uri: str | ModelUri) -> ModelVersion:
        """The version a ``models:/`` URI (or ``name/3``, ``name@alias``) names."""
        parsed = uri if isinstance(uri, ModelUri) else parse_models_uri(uri, bare=True)
        return self.store.resolve_model_version(
            self._project_id(), parsed.name, parsed.version, parsed.alias
        )

    # -- registering --------------------------------------------------------------

    def package_of(self, source: str) -> tuple[str, str, str]:
        """``(package digest, run id, artifact path)`` of a ``runs:/<run>/<path>`` package."""
        ref = parse_runs_uri(source)
        if not ref.path:
            raise InvalidArgumentError(
                f"cannot register {source!r}: name the package inside the run, "
                "e.g. 'runs:/<run>/model'"
            )
        for artifact in self.store.list_artifacts(ref.run_id):
            if artifact.path == ref.path:
                if artifact.kind != "dir":
                    break
                return artifact.digest, ref.run_id, ref.path
        raise NotFoundError(
            f"run {ref.run_id} has no model package at {ref.path!r}; log one with "
            "shipyard.log_model(model, name) and check 'shipyard artifacts list RUN'"
        )

    def read_manifest(self, package_digest: str) -> dict[str, Any]:
        """The package manifest (verified read); InvalidArgumentError if not a package."""
        tree = self.blobs.read_manifest(package_digest)
        for entry in tree.entries:
            if entry.path == MANIFEST_NAME:
                data = json.loads(self.blobs.get_bytes(entry.digest))
                if not isinstance(data, dict):
                    break
                return data
        raise InvalidArgumentError(
            f"package {package_digest[:12]} is not a model package (no valid {MANIFEST_NAME}); "
            "log models with shipyard.log_model"
        )

    def register(
        self,
        source: str,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Register the package at ``source`` (``runs:/<run>/<path>``) as the next
        version of ``name`` (the registered model is created if it does not exist)."""
        check_model_name(name)
        digest, run_id, _ = self.package_of(source)
        manifest = self.read_manifest(digest)
        project = self._project_id()
        try:
            model = self.store.get_registered_model_by_name(project, name)
        except NotFoundError:
            try:
                model = self.store.create_registered_model(project, name)
            except ConflictError:  # created meanwhile by another registrar
                model = self.store.get_registered_model_by_name(project, name)
        return self.store.create_model_version(
            model.id,
            digest,
            run_id=run_id,
            source=source,
            description=description,
            tags=tags,
            metadata={k: manifest[k] for k in _COPIED if k in manifest},
            created_by=actor or current_user(),
        )

    # -- aliases --------------------------------------------------------------------

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        """Point an ungated alias at a version (gated ones need a promotion)."""
        check_alias(alias)
        model = self.model(name)
        if alias in gated_aliases(model.contract):
            raise StateError(
                f"alias {alias!r} of {name!r} is gated by its production contract; move it "
                f"with 'shipyard models promote {name} {version} --alias {alias}' so the "
                "gates run (or --force with a reason)"
            )
        return self.store.set_alias(
            model.id, alias, version, actor=actor or current_user(), reason=reason
        )

    def delete_alias(
        self, name: str, alias: str, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        model = self.model(name)
        return self.store.delete_alias(
            model.id, alias, actor=actor or current_user(), reason=reason
        )

    def events(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self.store.list_alias_events(self.model(name).id, alias)

    # -- lineage --------------------------------------------------------------------

    def lineage(self, uri: str | ModelUri) -> Lineage:
        """Model version -> run -> code -> dataset versions -> params -> metrics -> experiment."""
        mv = self.resolve(uri)
        store = self.store
        model = store.get_registered_model(mv.model_id)
        aliases = [a for a, v in store.list_aliases(model.id).items() if v == mv.version]
        exports = [
            {"format": e.format, "package_digest": e.package_digest, "report": dict(e.report)}
            for e in store.list_model_exports(model.id, mv.version)
        ]
        if mv.run_id is None:
            return Lineage(model, mv, aliases, exports=exports)
        run = store.get_run(mv.run_id)
        experiment = store.get_experiment(run.experiment_id)
        datasets = []
        for item in store.list_run_inputs(run.id):
            dv = store.get_dataset_version_by_id(item.dataset_version_id)
            ds = store.get_dataset(dv.dataset_id)
            datasets.append(
                {
                    "dataset": ds.name,
                    "version": dv.version,
                    "ref": f"{ds.name}@{dv.version}",
                    "digest": dv.digest,
                    "role": item.role,
                    "files": dv.num_files,
                    "size": dv.size,
                }
            )
        return Lineage(
            model,
            mv,
            aliases,
            run={
                "id": run.id,
                "name": run.name,
                "status": str(run.status),
                "start_time": run.start_time,
                "end_time": run.end_time,
                "user": run.user,
            },
            experiment={"id": experiment.id, "name": experiment.name},
            code=dict(run.code),
            datasets=datasets,
            params=dict(run.params),
            metrics=run.metrics,
            exports=exports,
        )
