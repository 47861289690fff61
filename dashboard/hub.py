"""What all sessions of one dashboard server share, and how it is built from the config.

Owns ``Hub`` (the alert store, the ``feed.LiveFeed``, the ``replay_control.ReplayController``,
the model's thresholds, reference and note, the rule menu (for the classic alerts' "why"),
the run archive and the config) and
``build_hub(cfg)``, which opens them once per server; ``Hub.new_state`` gives each browser
session its own ``state.DashboardState`` over them. Nothing here imports Panel; the pages
are ``app``'s business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotline.alerts.reference import AEModel, load_ae_model
from hotline.alerts.store import AlertStore
from hotline.dashboard.feed import LiveFeed
from hotline.dashboard.model_info import ReferenceSF, Threshold, load_model_info
from hotline.dashboard.replay_control import ConfigContextFactory, ReplayController
from hotline.dashboard.state import DashboardState
from hotline.errors import HotlineError

__all__ = ["Hub", "build_hub", "rule_menu"]

log = logging.getLogger(__name__)


@dataclass
class Hub:
    """What all sessions of one server share: config, store, feed, replay, thresholds."""

    store: AlertStore
    feed: LiveFeed
    replay: ReplayController | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    model_note: str = ""
    reference: ReferenceSF | None = None
    archive: str | None = None
    cfg: Any = None
    ae_model: AEModel | None = None  #: the model card as the status engine reads it
    rules: dict[str, Any] = field(default_factory=dict)  #: the rule menu, by rule name

    def new_state(self, **params: Any) -> DashboardState:
        """A new session's state over the shared feed, replay and model info."""
        return DashboardState(self.feed, thresholds=self.thresholds, model_note=self.model_note,
                              replay=self.replay, archive=self.archive,
                              reference=self.reference, ae_model=self.ae_model,
                              rules=self.rules, **params)


def build_hub(cfg: Any, store: AlertStore | None = None,
              context_factory: Callable[[], Any] | None = None,
              replay: bool = True, replay_mode: str = "process", dqm: bool = False) -> Hub:
    """Everything the sessions of one server share (see the module docstring)."""
    if store is None:
        from hotline.alerts.backends import open_store

        store = open_store(cfg.store.resolved_url())
    feed = LiveFeed(store, source=cfg.source.name)
    if context_factory is None:
        context_factory = ConfigContextFactory(cfg)
    controller = None
    if replay:
        # the replay runs in its own process so that browser sessions never slow it down
        controller = ReplayController(store, feed, context_factory, source_name=cfg.source.name,
                                      tree=cfg.source.tree, step_size=cfg.source.step_size,
                                      mode=replay_mode, schema=cfg.source.schema, dqm=dqm)
    thresholds, reference, note = load_model_info(cfg.model.name, cfg.model.registry,
                                                  cfg.model.version)
    ae_model = None
    if cfg.model.name:
        try:
            ae_model = load_ae_model(cfg.model.name, cfg.model.version or None,
                                     cfg.model.registry or None)
        except HotlineError:
            ae_model = None  # the note above already says why; thresholds stay as loaded
    return Hub(store=store, feed=feed, replay=controller, thresholds=thresholds,
               model_note=note, archive=cfg.source.archive, cfg=cfg, reference=reference,
               ae_model=ae_model, rules=rule_menu(cfg))


def rule_menu(cfg: Any) -> dict[str, Any]:
    """The configured rule menu (``[alerts] rules``) by rule name; ``{}`` (with a warning)
    when it cannot be read: the classic alerts then show their objects without the cut."""
    from hotline.alerts.menu import load_menu

    try:
        return {r.name: r for r in load_menu(cfg.alerts.rules or None)}
    except HotlineError as exc:
        log.warning("dashboard: rule menu unreadable, classic alerts shown without cuts: %s",
                    exc)
        return {}
