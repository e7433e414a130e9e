"""This project's own composition root; keyscope's container is one part of it."""

from dependency_injector import containers, providers

from app.notes import NoteStore
from keyscope.containers import Container as KeyscopeContainer


class AppContainer(containers.DeclarativeContainer):
    keyscope = providers.Container(KeyscopeContainer)

    # The project's own services share keyscope's engine (one database, two histories).
    notes = providers.Singleton(NoteStore, keyscope.engine)


def build_container(keyscope: KeyscopeContainer | None = None) -> AppContainer:
    """The app's container; tests pass a keyscope test container to stand in for the real one."""
    container = AppContainer()
    if keyscope is not None:
        container.keyscope.override(keyscope)
    return container
