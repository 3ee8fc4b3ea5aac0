"""Variants: the same prompt asked again in its slot (``regenerate``), and choosing which answer history keeps.

Split from the Agent so the run path reads on its own; every variant is an ordinary run in the same session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbsessions.liveness import current_writer
from nbsessions.llm.base import Model
from nbsessions.llm.resolve import model_for
from nbsessions.schema import RunOutput, RunStatus

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb
    from nbsessions.execution import Execution
    from nbsessions.streams import RunStream


class VariantsMixin:
    """``regenerate``, ``variants`` and ``choose_variant`` for the Agent (and so the Team)."""

    db: BaseDb
    model: Model
    name: str | None
    agent_id: str
    session_id: str | None

    if TYPE_CHECKING:
        kind: str
        active_session_id: str | None
        def _run(self, run_id: str) -> RunOutput: ...
        def _session(self, session_id: str) -> Any: ...
        def get_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]: ...
        def get_session_state(self, session_id: str | None = None) -> dict[str, Any]: ...
        def _launch(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution: ...
        def _deliver(self, execution: Execution, stream: bool) -> RunOutput | RunStream: ...
        def _emit(self, event: str, session_id: str) -> None: ...

    def regenerate(self, session_id: str | None = None, run_id: str | None = None, *, model: Model | None = None,
                   stream: bool = False) -> RunOutput | RunStream:
        """Ask the same prompt again, with the same context, as a new variant of that run's slot.

        Default: the newest run of the session (``session_id`` or the active one). The new variant becomes the
        one used as history once it completes; ``choose_variant`` picks another.
        """
        target = self._regenerate_target(session_id, run_id)
        prompt_at = max(i for i, m in enumerate(target.messages) if m.role == "user" and not m.from_history)
        model = model or self.model_of(target)
        run = RunOutput(
            session_id=target.session_id, user_id=target.user_id, status=RunStatus.running, input=target.input,
            writer=current_writer(),
            messages=[m.copy() for m in target.messages[: prompt_at + 1]],  # copies keep history references
            model=model.id, provider=model.provider, model_origin=model.origin(), cell_id=target.cell_id,
            kind=self.kind, agent_name=self.name, agent_id=self.agent_id,
            variant_of=target.variant_of or target.run_id, tags=list(target.tags),
        )
        return self._deliver(self._launch(run, model, self.get_session_state(target.session_id)), stream)

    def model_of(self, run: RunOutput) -> Model:
        """The model that made ``run``: this agent's when it is that model, else one rebuilt from the run's
        record (continue and regenerate use it when no model is named)."""
        return model_for(run.model, run.provider, run.model_origin, self.model)

    def _regenerate_target(self, session_id: str | None, run_id: str | None) -> RunOutput:
        if run_id is not None:
            run = self._run(run_id)
            self._session(run.session_id)
            return run
        sid = session_id or self.session_id or self.active_session_id
        if sid is None:
            raise ValueError("no session given and no active session: nothing to regenerate")
        runs = [r for r in self.get_runs(sid, last=20) if r.superseded_by is None and r.input]
        if not runs:
            raise ValueError(f"session {sid[:8]} has no run to regenerate")
        return runs[-1]

    def variants(self, run_id: str) -> list[RunOutput]:
        """Every answer to one prompt slot (the original and its regenerations), oldest first."""
        run = self._run(run_id)
        slot = run.variant_of or run.run_id
        return [r for r in self.get_runs(run.session_id) if slot in (r.run_id, r.variant_of)]

    def choose_variant(self, run_id: str) -> RunOutput:
        """Keep this variant in the history; its siblings stay stored, marked as superseded by it."""
        group = self.variants(run_id)
        chosen = next(r for r in group if r.run_id == run_id)
        if chosen.status != RunStatus.completed:
            raise ValueError(f"run {run_id[:8]} is {chosen.status.value}: only a completed variant can be kept")
        for run in group:
            wanted = None if run.run_id == run_id else run_id
            if run.superseded_by != wanted:
                run.superseded_by = wanted
                self.db.upsert_run(run)
        self._emit("run", chosen.session_id)
        return self.db.get_run(run_id)
