"""A container that is gone before it could be inspected, as its start event describes it.

``docker run --rm`` of a short task can start, exit and be removed before the
watchdog inspects it. Its start event still carries the image (as written at
``docker run``), the name and the labels: enough to verify it and alert, so
no start goes without a result.
"""

from __future__ import annotations

import logging
from types import MappingProxyType

from gate.engine import ContainerInfo, Engine, EngineEvent
from gate.errors import EngineError

log = logging.getLogger("sealgate.watch")

_EVENT_KEYS = frozenset({"image", "name", "exitCode", "signal", "execDuration"})
"""Event attributes that are not container labels."""


def gone_container(engine: Engine, event: EngineEvent) -> ContainerInfo | None:
    """A container that is gone already (``--rm``), as its start event describes it."""
    attributes = event.attributes
    image = attributes.get("image", "")
    image_id = image if image.startswith("sha256:") else ""
    if not image_id and image:
        try:
            image_id = engine.image(image).id
        except EngineError:
            image_id = ""
    if not image_id:
        log.warning(
            "container %s is gone and its image %s with it: it cannot be verified",
            attributes.get("name") or event.id[:12],
            image or "(unnamed)",
        )
        return None
    labels = {k: v for k, v in attributes.items() if k not in _EVENT_KEYS}
    return ContainerInfo(
        id=event.id,
        name=attributes.get("name", event.id[:12]),
        image_id=image_id,
        image_ref=image,
        status="gone",
        labels=MappingProxyType(labels),
    )
