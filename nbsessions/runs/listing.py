"""How sessions are found and listed: by id, name or id prefix, experiment sessions folded under their source.

Shared by the magic's ``%agent sessions`` and the panel's list, so every surface agrees.
"""

from __future__ import annotations

from nbsessions.records.errors import SessionNotFoundError
from nbsessions.records.schema import Session


def match_session(sessions: list[Session], key: str, *, unique: bool = False) -> Session | None:
    """The session ``key`` names among ``sessions`` (newest first): exact id, exact name, then unique id prefix.

    The one lookup the magic and the CLI share. Stores written before names were unique may hold twins: the
    newest is meant, unless ``unique`` (deleting) wants an unambiguous reference. Ambiguity raises
    ``SessionNotFoundError``; no match is ``None`` so each surface says where to look.
    """
    by_name = [s for s in sessions if s.session_name == key]
    for matches in ([s for s in sessions if s.session_id == key], by_name[:1] if by_name and not unique else by_name,
                    [s for s in sessions if s.session_id.startswith(key)]):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(s.session_id[:8] for s in matches[:5])
            raise SessionNotFoundError(f"{key!r} matches {len(matches)} sessions ({ids}): give more of the id")
    return None


def group_experiments(sessions: list[Session], *, include: bool) -> tuple[list[Session], int]:
    """The sessions a list shows, and how many experiment sessions it hides.

    A 3x2x2 comparison makes 12 sessions: hidden by default (``include=False``); shown, each follows the session
    it came from (experiments whose source is not in ``sessions`` come last).
    """
    plain = [s for s in sessions if not s.experiment]
    if not include:
        return plain, len(sessions) - len(plain)
    shown_ids = {s.session_id for s in plain}
    under: dict[str, list[Session]] = {}
    orphans = []
    for s in sessions:
        if s.experiment:
            source = s.experiment.get("from")
            (under.setdefault(source, []) if source in shown_ids else orphans).append(s)
    return [x for s in plain for x in (s, *under.get(s.session_id, []))] + orphans, 0
